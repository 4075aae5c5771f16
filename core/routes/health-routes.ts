// GET /system/health: is this node alive, and ready for traffic? For load balancers (HAProxy's
// `option httpchk`) and orchestrators: any Host, no session, no rate limit, cheap (the store is
// asked at most once per half second, with a one-second deadline). 200 when ready, 503 when not:
// the store cannot be reached, or (several nodes on one store) this node cannot hear the others.
import type { FastifyInstance } from 'fastify'
import type { PluginRegistry } from '../plugin-host/registry.js'
import { HEALTH_PATH } from '../http/rate-limits.js'
import { deadline } from '../deadline.js'

export interface StoreHealth {
  /** 'files' (this machine's disk) or 'postgres'. */
  type: 'files' | 'postgres'
  reachable: boolean
  /** PostgreSQL: this node's LISTEN connection, which carries other nodes' changes. */
  events?: string
  /** PostgreSQL: this node's id in the farm. */
  node?: string
}

export interface Health {
  live: true
  ready: boolean
  store: StoreHealth
  plugins: Record<string, string>
}

const PING_EVERY_MS = 500
const PING_DEADLINE_MS = 1000

/** A store check shared by every caller for PING_EVERY_MS, and bounded by PING_DEADLINE_MS. */
export function cachedPing(ping: () => Promise<boolean>): () => Promise<boolean> {
  let last: { at: number; result: Promise<boolean> } | null = null
  return () => {
    const now = Date.now()
    if (last && now - last.at < PING_EVERY_MS) return last.result
    const result = deadline(ping().catch(() => false), PING_DEADLINE_MS, () => false)
    last = { at: now, result }
    return result
  }
}

export async function healthRoutes(app: FastifyInstance, opts: {
  plugins: PluginRegistry
  store: () => Promise<StoreHealth>
}): Promise<void> {
  app.get(HEALTH_PATH, async (_request, reply) => {
    const store = await opts.store()
    const ready = store.reachable && (store.events === undefined || store.events === 'listening')
    const plugins = Object.fromEntries(opts.plugins.statuses().map((p) => [p.name, p.state]))
    const body: Health = { live: true, ready, store, plugins }
    return reply.code(ready ? 200 : 503).header('cache-control', 'no-store').send(body)
  })
}
