// The legacy adapter's launcher: each installed wiki-plugin-* server part is started once, at
// kernel start, with what the reference gives it per site: startServer({argv, app, packageJson})
// with `app` a real Express 5 application. A start that throws, rejects or hangs marks the
// plugin failed with its reason and the farm serves on; so does a later process.exit.
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import express, { type Express } from 'express'
import type { PluginLogger } from '../../plugin-api.js'
import { PACKAGE_ROOT } from '../../package-info.js'
import { farmArgv, legacyConfig, type LegacyArgv, type LegacyConfig } from './argv.js'
import { LegacyChild } from './child-host.js'
import type { LegacyGrant, LegacyIsolation, LegacyState, LegacyStatus } from './types.js'

export type { LegacyGrant, LegacyIsolation, LegacyState, LegacyStatus } from './types.js'
import { scopedArgv } from './scope.js'
import { deadline } from '../../deadline.js'
import { pageHandler, securityHandler } from './handlers.js'
import { guardExit } from './exit-guard.js'
import { fenced } from './fault-guard.js'
import { loadStartServer } from './load.js'
import { provideDomainDispose } from './domain-dispose.js'
import { defaultMode, type LegacyMode } from './modes.js'
import { LegacyServerStandIn } from './server-stand-in.js'
import type { LegacyPackage } from './packages.js'
import { legacyScope, type LegacyRequestFacts } from './scope.js'




/** One started copy of a plugin's server part: its Express app and its params.server. */
export interface LegacyInstance {
  /** The site of a per-site instance; null for the shared one. */
  site: string | null
  state: 'launching' | 'running' | 'failed'
  reason: string | null
  app: Express
  server: LegacyServerStandIn
  /** The sockets upgraded into it: ended with it (the farm's close does not reach them). */
  sockets: Set<Duplex>
  lastUsed: number
}

export class LegacyPlugin {
  readonly pkg: LegacyPackage
  readonly grant: LegacyGrant
  readonly mode: LegacyMode
  state: LegacyState = 'stopped'
  reason: string | null = null
  launchedAt: Date | null = null
  launches = 0
  faults = 0
  lastFault: string | null = null
  /** The shared instance, once started (shared mode). */
  shared: LegacyInstance | null = null
  /** Per-site mode: each site's instance, or its start in progress; in order of last use. */
  readonly perSite = new Map<string, Promise<LegacyInstance>>()
  readonly failedSites = new Map<string, string>()
  /** Set once an instance has attached a websocket server to its params.server. */
  websocket = false

  constructor(pkg: LegacyPackage, grant: LegacyGrant) {
    this.pkg = pkg
    this.grant = grant
    this.mode = grant.mode ?? defaultMode(pkg.name)
  }

  get name(): string {
    return this.pkg.name
  }

  /** The shared instance's Express app (shared mode), for callers that serve it directly. */
  get app(): Express | null {
    return this.shared?.state === 'running' ? this.shared.app : null
  }

  servesSite(site: string): boolean {
    const sites = this.grant.sites ?? '*'
    return sites === '*' || sites.includes(site)
  }

  status(): LegacyStatus {
    return {
      name: this.name, source: `legacy ${this.pkg.packageName}@${this.pkg.version}`, legacy: true, mode: this.mode,
      state: this.state, reason: this.reason, launchedAt: this.launchedAt?.toISOString() ?? null,
      launches: this.launches,
      instances: this.mode === 'shared' ? (this.shared?.state === 'running' ? 1 : 0) : this.perSite.size,
      failedSites: Object.fromEntries(this.failedSites),
      faults: this.faults, lastFault: this.lastFault, isolation: 'none', trust: 'farm', sites: this.grant.sites ?? '*',
      websocket: this.websocket,
    }
  }
}

export interface LegacyHostOptions {
  config: LegacyConfig
  packages: LegacyPackage[]
  /** Names of wikifarm's own plugins: a legacy server part of the same name is not started. */
  builtins: ReadonlySet<string>
  launchTimeoutMs: number
  log: PluginLogger
  /** The farm's listening address, for params.server.address(). */
  address?: () => AddressInfo | string | null
  /** Per-site mode: instances kept per plugin; past it the least recently used one is dropped. */
  maxInstances?: number
  /** 'process' (default): the plugins run in the legacy child; 'none': in this thread. */
  isolation?: LegacyIsolation
  /** The legacy child's handler deadline (isolation 'process'). */
  handlerTimeoutMs?: number
  /** How long the legacy child may leave a ping unanswered before it is killed and restarted. */
  heartbeatDeadlineMs?: number
}

/** Per-site instances kept per plugin by default: each holds its module state and Express app. */
export const DEFAULT_MAX_INSTANCES = 256

interface RequestWithSession extends IncomingMessage {
  session?: { friend?: string }
}

function timeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return deadline(promise, ms, () => { throw new Error(`startServer did not finish within ${ms} ms`) })
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split(/\r?\n/, 1)[0] ?? ''
}

export class LegacyPlugins {
  readonly #plugins: LegacyPlugin[]
  readonly #options: LegacyHostOptions
  readonly #farmId = randomBytes(8).toString('hex')
  /** The facts of each request being served, by the request object Express is given. */
  readonly #facts = new WeakMap<IncomingMessage, LegacyRequestFacts>()
  readonly farmArgv: LegacyArgv
  #packageJson: unknown = null
  #maxInstances: number
  #releaseExit: () => void = () => {}
  /** The legacy child, with isolation 'process' once launched; null in the farm's thread. */
  #child: LegacyChild | null = null

  constructor(options: LegacyHostOptions, grants: Record<string, LegacyGrant>) {
    this.#options = options
    this.#maxInstances = options.maxInstances ?? DEFAULT_MAX_INSTANCES
    this.#plugins = options.packages.map((pkg) => new LegacyPlugin(pkg, grants[pkg.name] ?? {}))
    this.farmArgv = farmArgv(options.config, options.packages[0]?.packageDir ?? join(PACKAGE_ROOT, 'node_modules'))
    for (const plugin of this.#plugins) {
      if (options.builtins.has(plugin.name)) {
        plugin.state = 'disabled'
        plugin.reason = `wikifarm's built-in ${plugin.name} plugin serves /plugin/${plugin.name}`
      } else if (plugin.grant.enabled === false) {
        plugin.state = 'disabled'
        plugin.reason = 'disabled by the operator'
      }
    }
  }

  /** The plugins whose routes the kernel serves: not replaced by a built-in. */
  served(): LegacyPlugin[] {
    return this.#plugins.filter((p) => !this.#options.builtins.has(p.name))
  }

  get(name: string): LegacyPlugin | undefined {
    return this.#plugins.find((p) => p.name === name)
  }

  /** The legacy child the plugins run in, or null when they run in this thread. */
  get child(): LegacyChild | null {
    return this.#child
  }

  statuses(): LegacyStatus[] {
    const child = this.#child
    if (!child) return this.#plugins.map((p) => p.status())
    // The child knows how its plugins fare; the disabled ones it never started are known here.
    const reported = new Map(child.statuses.map((s) => [s.name, s]))
    return this.#plugins.map((p) => ({
      ...(reported.get(p.name) ?? p.status()), isolation: 'process' as const, child: child.status(),
    }))
  }

  /** Asks the legacy child for its plugins' statuses now (statuses() then reports them). */
  async refresh(): Promise<void> {
    await this.#child?.freshStatuses()
  }

  /** Per-site instances kept per plugin from now on (at least 1). */
  setMaxInstances(limit: number): void {
    this.#maxInstances = Math.max(1, Math.floor(limit))
    this.#child?.setMaxInstances(this.#maxInstances)
  }

  /** Marks a plugin failed; its routes answer 503 with the reason from now on. */
  fail(name: string, reason: string): void {
    const plugin = this.get(name)
    if (!plugin || plugin.state === 'failed') return
    plugin.state = 'failed'
    plugin.reason = reason
    if (plugin.shared) this.#stop(plugin.shared, reason)
    for (const site of [...plugin.perSite.keys()]) this.#drop(plugin, site, reason)
    this.#options.log.error('legacy plugin failed', { plugin: name, reason })
  }

  /** Marks one site's instance failed (per-site mode): that site's requests answer 503, others go on. */
  failInstance(name: string, site: string, reason: string): void {
    const plugin = this.get(name)
    if (!plugin) return
    plugin.failedSites.set(site, reason)
    this.#drop(plugin, site, reason)
    this.#options.log.error('legacy plugin failed on a site', { plugin: name, site, reason })
  }

  /** Counts an exception a plugin's code threw and that the fence contained. */
  fault(name: string, err: unknown): void {
    const plugin = this.get(name)
    if (!plugin) return
    plugin.faults++
    plugin.lastFault = firstLine(err).slice(0, 300) || null
  }

  /** Runs `fn` as the plugin serving a request with these facts. */
  serve<T>(plugin: LegacyPlugin, req: IncomingMessage, facts: LegacyRequestFacts, fn: () => T): T {
    this.#facts.set(req, facts)
    const instance = plugin.mode === 'per-site' ? facts.site.name : null
    return legacyScope.run({ farm: this.#farmId, plugin: plugin.name, instance, request: facts }, fn)
  }

  /**
   * The instance that serves `facts.site`: the shared one, or (per-site mode) the site's own,
   * started now on the site's first use. Null when there is none to serve it (see plugin.reason
   * or plugin.failedSites).
   */
  async instanceFor(plugin: LegacyPlugin, facts: LegacyRequestFacts): Promise<LegacyInstance | null> {
    if (plugin.mode === 'shared') return plugin.shared?.state === 'running' ? plugin.shared : null
    if (plugin.state !== 'running') return null
    const site = facts.site.name
    if (plugin.failedSites.has(site)) return null
    let starting = plugin.perSite.get(site)
    if (starting) {
      // Most recently used last, so the first key is the one to drop.
      plugin.perSite.delete(site)
      plugin.perSite.set(site, starting)
    } else {
      while (plugin.perSite.size >= this.#maxInstances) {
        const oldest = plugin.perSite.keys().next().value as string
        this.#drop(plugin, oldest, 'dropped: least recently used past the instance limit')
      }
      const argv = { ...facts.argv }
      const launchFacts: LegacyRequestFacts = { site: facts.site, authorized: false, admin: false, friend: null, argv }
      starting = this.#start(plugin, site, argv, launchFacts)
      plugin.perSite.set(site, starting)
    }
    const instance = await starting
    if (instance.state !== 'running') return null
    instance.lastUsed = Date.now()
    return instance
  }

  #drop(plugin: LegacyPlugin, site: string, reason: string): void {
    const starting = plugin.perSite.get(site)
    plugin.perSite.delete(site)
    void starting?.then((instance) => this.#stop(instance, reason))
  }

  #stop(instance: LegacyInstance, reason: string): void {
    instance.state = 'failed'
    instance.reason = reason
    instance.server.close()
    this.#endSockets(instance)
  }

  async launchAll(): Promise<void> {
    if ((this.#options.isolation ?? 'process') === 'process') {
      // Nothing of a legacy plugin is loaded in this process: the child starts them all.
      if (!this.#plugins.some((p) => p.state === 'stopped')) return
      this.#child = new LegacyChild({
        config: legacyConfig(this.#options.config), packages: this.#options.packages,
        grants: Object.fromEntries(this.#plugins.map((p) => [p.name, p.grant])),
        builtins: [...this.#options.builtins], launchTimeoutMs: this.#options.launchTimeoutMs,
        handlerTimeoutMs: this.#options.handlerTimeoutMs ?? 30_000, maxInstances: this.#maxInstances,
        ...(this.#options.heartbeatDeadlineMs !== undefined
          ? { heartbeatDeadlineMs: this.#options.heartbeatDeadlineMs } : {}),
        log: this.#options.log,
      })
      for (const plugin of this.#plugins) if (plugin.state === 'stopped') plugin.state = 'running'
      await this.#child.start()
      return
    }
    if (this.#plugins.length > 0) provideDomainDispose()
    this.#releaseExit = guardExit(this.#farmId, (plugin, code, site) => {
      const reason = `called process.exit(${String(code ?? '')})`
      if (site === null) this.fail(plugin, reason)
      else this.failInstance(plugin, site, reason)
    })
    this.#packageJson = JSON.parse(await readFile(join(PACKAGE_ROOT, 'package.json'), 'utf8'))
    await Promise.all(this.#plugins.filter((p) => p.state === 'stopped').map(async (plugin) => {
      if (plugin.mode === 'per-site') {
        // Nothing to start before a site asks: each site's instance starts on its first use.
        plugin.state = 'running'
        return
      }
      plugin.state = 'launching'
      const instance = await this.#start(plugin, null, scopedArgv(this.farmArgv), null)
      if (instance.state === 'running') {
        plugin.shared = instance
        plugin.state = 'running'
      } else {
        this.fail(plugin.name, instance.reason ?? 'startServer failed')
      }
    }))
  }

  #app(): Express {
    const { config } = this.#options
    const app = express()
    app.disable('x-powered-by')
    // As the reference's site app does before any plugin route: JSON and form bodies parsed, the
    // session the security plugin fills.
    app.use(express.json({ limit: config.uploadLimit }))
    app.use(express.urlencoded({ extended: true, limit: config.uploadLimit }))
    app.use((req, _res, next) => {
      const facts = this.#facts.get(req)
      ;(req as RequestWithSession).session = facts?.friend ? { friend: facts.friend } : {}
      next()
    })
    const factsOf = (req: IncomingMessage | undefined): LegacyRequestFacts | null =>
      (req ? this.#facts.get(req) : undefined) ?? legacyScope.getStore()?.request ?? null
    Object.assign(app, { securityhandler: securityHandler(factsOf), pagehandler: pageHandler() })
    return app
  }

  /** Starts one instance: the shared one (`site` null) or a site's own. Never throws: a failure is its state. */
  async #start(
    plugin: LegacyPlugin, site: string | null, argv: LegacyArgv, facts: LegacyRequestFacts | null,
  ): Promise<LegacyInstance> {
    const app = this.#app()
    const server = new LegacyServerStandIn(this.#options.address ?? (() => null))
    const instance: LegacyInstance = {
      site, state: 'launching', reason: null, app, server, sockets: new Set(), lastUsed: Date.now(),
    }
    const what = site === null ? {} : { site }
    try {
      // What the start leaves running (timers, fetches: plugmatic parses a download in a
      // callback) stays fenced: a throw there is counted, not fatal to the farm.
      const onFault = (err: unknown): void => {
        this.fault(plugin.name, err)
        this.#options.log.error('legacy plugin threw outside a request',
          { plugin: plugin.name, ...what, reason: plugin.lastFault })
      }
      const scope = { farm: this.#farmId, plugin: plugin.name, instance: site, request: facts }
      // The stand-in stays out of this fence: an emitter in a domain enters it on every emit, and
      // what a websocket's upgrade creates (the plugin's socket, its parser) must belong to the
      // upgrade's own fence, which closes that socket on a throw.
      await legacyScope.run(scope, () => fenced(onFault, [], async () => {
        const start = await loadStartServer(plugin.pkg.server, plugin.pkg.dir, site !== null)
        const params = { argv, app, packageJson: this.#packageJson, server }
        await timeout(Promise.resolve().then(() => start(params)), this.#options.launchTimeoutMs)
      }))
      // A process.exit during start has already marked it failed.
      if (plugin.state === 'failed' || (site !== null && plugin.failedSites.has(site))) {
        instance.state = 'failed'
        instance.reason = plugin.failedSites.get(site ?? '') ?? plugin.reason
        return instance
      }
      instance.state = 'running'
      plugin.launchedAt = new Date()
      plugin.launches++
      if (server.takesUpgrades) plugin.websocket = true
      const pkg = `${plugin.pkg.packageName}@${plugin.pkg.version}`
      this.#options.log.info('legacy plugin launched', { plugin: plugin.name, package: pkg, ...what })
    } catch (err) {
      instance.state = 'failed'
      instance.reason = `startServer failed: ${firstLine(err)}`
      if (site !== null) this.failInstance(plugin.name, site, instance.reason)
    }
    return instance
  }

  /**
   * Ends every socket upgraded into a legacy plugin. The farm's server waits for its connections
   * when it closes, and these are not the kernel's websockets: called before it closes.
   */
  endSockets(): void {
    this.#child?.endSockets()
    for (const plugin of this.#plugins) {
      const instances = plugin.shared ? [plugin.shared] : []
      for (const starting of plugin.perSite.values()) void starting.then((i) => this.#endSockets(i))
      for (const instance of instances) this.#endSockets(instance)
    }
  }

  #endSockets(instance: LegacyInstance): void {
    for (const socket of instance.sockets) socket.destroy()
    instance.sockets.clear()
  }

  async close(): Promise<void> {
    const child = this.#child?.close()
    for (const plugin of this.#plugins) {
      if (plugin.state === 'running' || plugin.state === 'launching') plugin.state = 'stopped'
      if (plugin.shared) this.#stop(plugin.shared, 'the farm is closing')
      plugin.shared = null
      for (const site of [...plugin.perSite.keys()]) this.#drop(plugin, site, 'the farm is closing')
    }
    this.#releaseExit()
    await child
  }
}
