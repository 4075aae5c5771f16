// Rate limits and connection caps: what one client address may cost the farm. Logins
// (POST /auth/reclaim/), claims (POST /login), edits (PUT /page/:slug/action), websocket
// upgrades and reads (every other GET and HEAD) are counted per client address in token
// buckets (a burst of the whole per-minute allowance, refilled evenly); open websockets are
// capped per address and per site. Refusals are 429 with the kernel's {error, code} and
// Retry-After, before any route or plugin runs. Open HTTP connections are capped earlier, where
// they are accepted (connection-guard.ts).
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Socket } from 'node:net'
import { LRUCache } from 'lru-cache'
import type { FarmConfig } from '../farm-config.js'
import { ERR_RATE_LIMITED, ERR_TOO_MANY_CONNECTIONS } from '../errors.js'

export type RateLimitSettings = Pick<FarmConfig,
  'loginRate' | 'claimRate' | 'editRate' | 'upgradeRate' | 'readRate' |
  'socketsPerIp' | 'socketsPerSite' | 'connectionsPerIp'>

/**
 * Every limit and cap off: for load generators and tests that send thousands of requests from
 * one address (spread over DEFAULTS).
 */
export const RATE_LIMITS_OFF: RateLimitSettings = Object.freeze({
  loginRate: 0, claimRate: 0, editRate: 0, upgradeRate: 0, readRate: 0,
  socketsPerIp: 0, socketsPerSite: 0, connectionsPerIp: 0,
})

/** What is counted, and under which setting. */
export type Limited = 'login' | 'claim' | 'edit' | 'upgrade' | 'read'

/** Client addresses remembered per limit; beyond it the least recently seen is forgotten. */
const MAX_TRACKED = 100_000
const MINUTE_MS = 60_000

interface Bucket { tokens: number; at: number }

/**
 * One token bucket per client address: `perMinute` tokens at most, refilled evenly over a
 * minute. Memory is bounded (an LRU of addresses), so a flood from many addresses cannot grow it.
 */
export class RateLimiter {
  readonly perMinute: number
  readonly #buckets = new LRUCache<string, Bucket>({ max: MAX_TRACKED })
  readonly #now: () => number

  constructor(perMinute: number, now: () => number = Date.now) {
    this.perMinute = perMinute
    this.#now = now
  }

  /** Takes a token for `key`: 0 when allowed, else the seconds until one is available. */
  take(key: string): number {
    const now = this.#now()
    const bucket = this.#buckets.get(key) ?? { tokens: this.perMinute, at: now }
    bucket.tokens = Math.min(this.perMinute, bucket.tokens + (now - bucket.at) * this.perMinute / MINUTE_MS)
    bucket.at = now
    this.#buckets.set(key, bucket)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return 0
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) * MINUTE_MS / this.perMinute / 1000))
  }

  get tracked(): number {
    return this.#buckets.size
  }
}

/** Answered without a site or a session (core/routes/health-routes.ts). */
export const HEALTH_PATH = '/system/health'

/** Which limit a request counts against, if any. */
export function limitedAs(request: FastifyRequest): Limited | null {
  if (request.method === 'GET' && (request.headers.upgrade ?? '').toLowerCase() === 'websocket') return 'upgrade'
  const route = request.routeOptions.url
  // The load balancer's health check comes every second from one address: never refused for it.
  if (route === HEALTH_PATH) return null
  if (request.method === 'POST' && route === '/auth/reclaim/') return 'login'
  if (request.method === 'POST' && route === '/login') return 'claim'
  if (request.method === 'PUT' && route === '/page/:slug/action') return 'edit'
  if (request.method === 'GET' || request.method === 'HEAD') return 'read'
  return null
}

/** Open websockets per client address and per site, released when each socket closes. */
export class ConnectionCaps {
  readonly perIp: number
  readonly perSite: number
  readonly byIp = new Map<string, number>()
  readonly bySite = new Map<string, number>()
  readonly #counted = new WeakSet<Socket>()

  constructor(perIp: number, perSite: number) {
    this.perIp = perIp
    this.perSite = perSite
  }

  /** Counts `socket` for its address and site, or says which cap it would pass. */
  admit(socket: Socket, ip: string, site: string): 'ip' | 'site' | null {
    if (this.#counted.has(socket)) return null
    if (this.perIp > 0 && (this.byIp.get(ip) ?? 0) >= this.perIp) return 'ip'
    if (this.perSite > 0 && (this.bySite.get(site) ?? 0) >= this.perSite) return 'site'
    this.#counted.add(socket)
    bump(this.byIp, ip, 1)
    bump(this.bySite, site, 1)
    socket.once('close', () => {
      bump(this.byIp, ip, -1)
      bump(this.bySite, site, -1)
    })
    return null
  }
}

function bump(counts: Map<string, number>, key: string, by: number): void {
  const next = (counts.get(key) ?? 0) + by
  if (next <= 0) counts.delete(key)
  else counts.set(key, next)
}

export interface RateLimits {
  limiters: Partial<Record<Limited, RateLimiter>>
  caps: ConnectionCaps
}

const SETTING: Record<Limited, keyof RateLimitSettings> = {
  login: 'loginRate', claim: 'claimRate', edit: 'editRate', upgrade: 'upgradeRate', read: 'readRate',
}

const WHAT: Record<Limited, string> = {
  login: 'login attempts', claim: 'claims', edit: 'edits', upgrade: 'websocket connections', read: 'reads',
}

/**
 * Registers the limits as an onRequest hook. It must come after the request context's hook:
 * the site is resolved and a foreign Origin already refused, so refused requests cost nothing.
 * A setting of 0 turns its limit off.
 */
export function registerRateLimits(app: FastifyInstance, settings: RateLimitSettings,
  /**
   * A request another node of the farm forwarded (core/cluster/forwarding.ts): that node has
   * already counted it against its client's own address; here every client of that node would
   * share the node's one address.
   */
  fromFarmNode: (request: FastifyRequest) => boolean = () => false): RateLimits {
  const limiters: Partial<Record<Limited, RateLimiter>> = {}
  for (const limited of Object.keys(SETTING) as Limited[]) {
    const perMinute = settings[SETTING[limited]]
    if (perMinute > 0) limiters[limited] = new RateLimiter(perMinute)
  }
  const caps = new ConnectionCaps(settings.socketsPerIp, settings.socketsPerSite)
  const watchesSockets = caps.perIp > 0 || caps.perSite > 0

  app.addHook('onRequest', async (request, reply) => {
    const limited = limitedAs(request)
    if (limited === null || fromFarmNode(request)) return
    const limiter = limiters[limited]
    if (limiter) {
      const wait = limiter.take(request.ip)
      if (wait > 0) {
        reply.header('retry-after', String(wait))
        throw new ERR_RATE_LIMITED(
          `more than ${limiter.perMinute} ${WHAT[limited]} a minute from ${request.ip}: retry in ${wait} s`,
        )
      }
    }
    if (limited === 'upgrade' && watchesSockets) {
      const over = caps.admit(request.raw.socket, request.ip, request.site.name)
      if (over !== null) {
        reply.header('retry-after', '10')
        throw new ERR_TOO_MANY_CONNECTIONS(over === 'ip'
          ? `${caps.perIp} open websockets from ${request.ip}`
          : `${caps.perSite} open websockets on ${request.site.name}`)
      }
    }
  })
  return { limiters, caps }
}
