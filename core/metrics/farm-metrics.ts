// Prometheus metrics of the farm, on a listener of their own (--metricsPort; off by default).
// With metrics off nothing here runs on a request: no hook, no wrapper, no listener. With them
// on, a request costs one route-level hook (http-metrics.ts) and a store call two clock reads
// (store-metrics.ts); every other figure is read from the kernel's parts when /metrics is
// scraped. Label values come from the code and the operator's configuration (route patterns,
// plugin names, store operations, states), never from what a client sends.
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import type { FastifyInstance } from 'fastify'
import type { FarmConfig } from '../farm-config.js'
import type { PageStore } from '../pages/page-store.js'
import type { SiteRegistry } from '../pages/sites.js'
import type { PluginRegistry, PluginState } from '../plugin-host/registry.js'
import type { SocketHub } from '../sockets/socket-hub.js'
import { HttpMetrics } from './http-metrics.js'
import { StoreMetrics, storeKind } from './store-metrics.js'
import { MetricsListener } from './metrics-listener.js'

/** Every plugin state: tsc fails here when PluginState gains one. */
const STATES: Record<PluginState, true> = {
  disabled: true, launching: true, running: true, restarting: true, unavailable: true, failed: true, stopped: true,
  standby: true,
}
const PLUGIN_STATES = Object.keys(STATES) as PluginState[]

/** A node's part in a farm of many; "single" while a farm is one process. */
const ROLE = /^[a-z][a-z0-9_-]{0,31}$/

/** What other parts of the kernel may tell the metrics; a no-op when metrics are off. */
export interface FarmMetrics {
  /** On (a --metricsPort is set)? */
  readonly enabled: boolean
  /** Sets the node's role, exposed as wikifarm_node_role{role="…"} 1 (a short lowercase word). */
  setNodeRole(role: string): void
  /** The metrics listener's URL once it listens (http://127.0.0.1:9100), else null. */
  address(): string | null
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The farm's metrics (core/metrics/farm-metrics.ts). */
    metrics: FarmMetrics
  }
}

export interface MetricsParts {
  config: FarmConfig
  sites: SiteRegistry
  plugins: PluginRegistry
  sockets: SocketHub
  store: PageStore
}

const OFF: FarmMetrics = {
  enabled: false,
  setNodeRole(role: string) { checkRole(role) },
  address: () => null,
}

function checkRole(role: string): void {
  if (!ROLE.test(role)) throw new TypeError(`node role must match ${ROLE}, got ${JSON.stringify(role).slice(0, 40)}`)
}

/** The registry with every wikifarm family and Node's default process metrics. */
export function farmRegistry(parts: MetricsParts, http: HttpMetrics): {
  registry: Registry; store: StoreMetrics; role: Gauge<'role'>
} {
  const { sites, plugins, sockets } = parts
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  http.expose(registry)
  const store = new StoreMetrics(registry, storeKind(parts.store))
  new Gauge({
    name: 'wikifarm_sites_open',
    help: 'Sites open now (a site opens on its first request and closes when idle)',
    registers: [registry],
    collect() { this.set(sites.openCount) },
  })
  new Gauge({
    name: 'wikifarm_plugin_sockets',
    help: 'Open websockets by plugin (plugin="kernel": push subscriptions)',
    labelNames: ['plugin'],
    registers: [registry],
    collect() {
      this.reset()
      for (const record of plugins.records()) this.set({ plugin: record.name }, 0)
      for (const [plugin, bySite] of Object.entries(sockets.counts())) {
        let n = 0
        for (const count of Object.values(bySite)) n += count
        this.set({ plugin }, n)
      }
    },
  })
  new Gauge({
    name: 'wikifarm_plugin_state',
    help: 'State of each server-side plugin: 1 for the state it is in, 0 for the others',
    labelNames: ['plugin', 'state'],
    registers: [registry],
    collect() {
      this.reset()
      for (const record of plugins.records())
        for (const state of PLUGIN_STATES) this.set({ plugin: record.name, state }, record.state === state ? 1 : 0)
    },
  })
  new Counter({
    name: 'wikifarm_plugin_restarts_total',
    help: 'Launches of each plugin after its first: restarts after a crash and relaunches by the administrator',
    labelNames: ['plugin'],
    registers: [registry],
    collect() {
      this.reset()
      for (const record of plugins.records()) this.inc({ plugin: record.name }, Math.max(0, record.launches - 1))
    },
  })
  const role = new Gauge({
    name: 'wikifarm_node_role',
    help: 'The role of this node in the farm: 1 for its role ("single": a farm of one process)',
    labelNames: ['role'],
    registers: [registry],
  })
  role.set({ role: 'single' }, 1)
  return { registry, store, role }
}

/**
 * Sets up metrics when config.metricsPort is set, and decorates `app.metrics` either way. Call
 * it before any route is registered and before any site opens: each route gets its hook when
 * it is added, each site its measured store when it opens. The listener starts when the app is
 * ready (before the sites' port listens) and closes with it.
 */
export function registerMetrics(app: FastifyInstance, parts: MetricsParts): FarmMetrics {
  if (parts.config.metricsPort === null) {
    app.decorate('metrics', OFF)
    return OFF
  }
  const http = new HttpMetrics()
  http.register(app)
  const { registry, store, role } = farmRegistry(parts, http)
  const uninstrument = store.instrument(parts.store)
  const listener = new MetricsListener(registry, parts.config.metricsPort, parts.config.metricsHost)
  app.addHook('onReady', async () => { await listener.listen() })
  app.addHook('onClose', async () => {
    await listener.close()
    uninstrument()
  })
  const metrics: FarmMetrics = {
    enabled: true,
    setNodeRole(name: string) {
      checkRole(name)
      role.reset()
      role.set({ role: name }, 1)
    },
    address: () => listener.url(),
  }
  app.decorate('metrics', metrics)
  return metrics
}
