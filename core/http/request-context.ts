// What the kernel resolves for every request before any route runs, and the guards that
// routes use on it: site, session, ownership, origin.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { FarmConfig } from '../farm-config.js'
import { FreshSession, type Session, type SessionKeeper } from './sessions.js'
import type { Site, SiteRegistry } from '../pages/sites.js'
import { normalizeHost } from './site-router.js'
import { HEALTH_PATH } from './rate-limits.js'
import {
  ERR_BAD_HOST, ERR_BAD_SLUG, ERR_CLOSING, ERR_FOREIGN_ORIGIN, ERR_NOT_ADMIN, ERR_NOT_OWNER,
  ERR_READ_ONLY, ERR_UNKNOWN_SITE,
} from '../errors.js'
import { isSlug } from '../../schemas/page.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * A GET that changes state (GET /logout, as the reference client calls it): the foreign-
     * origin rule of state-changing methods applies to it too.
     */
    changesState?: boolean
  }
  interface FastifyRequest {
    /** The virtual site this request is for, resolved from Host by the site router. */
    site: Site
    /** The visitor's session, from the signed cookie (a fresh one when there was none). */
    session: Session
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

export function checkSlug(slug: string): string {
  if (!isSlug(slug)) throw new ERR_BAD_SLUG(JSON.stringify(slug.slice(0, 120)))
  return slug
}

export interface Guards {
  /** Throws unless the request may change its site: the owner, or the admin. */
  /** `doing` ends the refusal's sentence "Only the owner of this wiki may …" (default: change it). */
  requireOwner(request: FastifyRequest, doing?: string): Promise<void>
  requireAdmin(request: FastifyRequest): void
  isOwner(request: FastifyRequest): Promise<boolean>
  isAdmin(request: FastifyRequest): boolean
}

export function createGuards(config: FarmConfig, sessions: SessionKeeper): Guards {
  const isAdmin = (request: FastifyRequest): boolean =>
    config.admin !== null && sessions.proves(request.session, request.site.name, config.admin)
  const isOwner = async (request: FastifyRequest): Promise<boolean> => {
    const owner = await request.site.owner()
    if (!owner) return false
    return sessions.proves(request.session, request.site.name, owner.friend.secret) || isAdmin(request)
  }
  return {
    isAdmin,
    isOwner,
    requireAdmin(request) {
      if (!isAdmin(request)) throw new ERR_NOT_ADMIN()
    },
    async requireOwner(request, doing = 'change it') {
      const owner = await request.site.owner()
      if (!owner) {
        if (config.security_legacy || isAdmin(request)) return
        throw new ERR_READ_ONLY()
      }
      if (!(await isOwner(request))) throw new ERR_NOT_OWNER(doing)
    },
  }
}

function hostLines(rawHeaders: string[]): number {
  let count = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name !== undefined && name.length === 4 && name.toLowerCase() === 'host') count++
  }
  return count
}

/** The origins a browser on this site sends: either scheme, and the host the site was resolved from. */
function ownOrigins(rawHost: string): string[] {
  const host = rawHost.toLowerCase()
  return [`http://${host}`, `https://${host}`]
}

/**
 * Who sent a state-changing request, when that is not this site: the Origin if there is one;
 * else the browser's Sec-Fetch-Site (only `same-origin`, or `none` for what the person typed,
 * pass: `same-site` is a sibling site of the farm); else, from a browser too old for either,
 * the Referer's origin. Null when nothing says it came from elsewhere (curl, other tools).
 */
function foreignSource(
  headers: FastifyRequest['headers'], own: readonly string[], extra: ReadonlySet<string>,
): string | null {
  const allowed = (origin: string): boolean => own.includes(origin) || extra.has(origin)
  const origin = headers.origin
  if (origin !== undefined) return allowed(origin.toLowerCase()) ? null : origin.slice(0, 200)
  const fetchSite = headers['sec-fetch-site']
  if (fetchSite !== undefined) {
    return fetchSite === 'same-origin' || fetchSite === 'none' ? null : String(fetchSite).slice(0, 40)
  }
  const referer = headers.referer
  if (referer !== undefined) {
    let from: string
    try {
      from = new URL(referer).origin.toLowerCase()
    } catch {
      return 'a malformed Referer'
    }
    return allowed(from) ? null : `Referer ${from.slice(0, 200)}`
  }
  return null
}

/**
 * The session the cookie stands for now: a login to this site counts only in the site's
 * current session epoch (a logout anywhere moved it on) and only here; otherwise the
 * visitor keeps their id and loses the login.
 */
async function liveSession(session: Session, site: Site, sessions: SessionKeeper): Promise<Session> {
  if (session.friend === null) return session
  if (session.site === site.name && session.epoch === await site.sessionEpoch()) return session
  return sessions.withoutLogin(session)
}

/**
 * Registers the hooks that run first on every request and websocket upgrade: refuse while
 * closing, resolve the site from Host (400 malformed, 404 not served, nothing created),
 * read the session, refuse state changes from foreign origins.
 */
export function registerRequestContext(app: FastifyInstance, deps: {
  config: FarmConfig
  sites: SiteRegistry
  sessions: SessionKeeper
  isClosing: () => boolean
}): void {
  const { config, sites, sessions } = deps
  const extraOrigins = new Set(config.origins.map((o) => o.toLowerCase()))
  app.decorateRequest('site', null as unknown as Site)
  app.decorateRequest('session', null as unknown as Session)

  app.addHook('onRequest', async (request, reply) => {
    if (deps.isClosing()) {
      reply.header('connection', 'close')
      throw new ERR_CLOSING()
    }
    // The load balancer's check asks about the node, not a site: any Host, no session.
    if (request.routeOptions.url === HEALTH_PATH) return
    // Node keeps the first of several Host lines; which site was meant is then ambiguous.
    if (hostLines(request.raw.rawHeaders) > 1) throw new ERR_BAD_HOST('more than one Host header')
    // Behind a trusted proxy the public host is the one the nearest proxy names: the last
    // entry, as Fastify's request.host reads it (earlier entries come from the client).
    const forwarded = config.trustProxy ? request.headers['x-forwarded-host'] : undefined
    const rawHost = typeof forwarded === 'string' ? forwarded.split(',').at(-1)?.trim() : request.headers.host
    const host = normalizeHost(rawHost)
    const name = await sites.resolveName(host)
    if (name === null) throw new ERR_UNKNOWN_SITE(host)
    request.site = sites.open(name)
    request.session = await liveSession(sessions.fromRequest(request), request.site, sessions)

    // A websocket upgrade is a GET that changes state (a live channel with the visitor's
    // session): a foreign Origin is refused before any plugin sees it (cross-site hijacking).
    const upgrade = (request.headers.upgrade ?? '').toLowerCase() === 'websocket'
    if (!SAFE_METHODS.has(request.method) || upgrade || request.routeOptions.config?.changesState === true) {
      const foreign = foreignSource(request.headers, ownOrigins(rawHost ?? ''), extraOrigins)
      if (foreign !== null) throw new ERR_FOREIGN_ORIGIN(foreign)
    }
  })

  // A visitor gets a session cookie with the first page they open, or as soon as their
  // session is used (login, a plugin's session label); afterwards only when it changes.
  app.addHook('onSend', async (request, reply, payload) => {
    const session = request.session
    if (session instanceof FreshSession && !reply.hasHeader('set-cookie') &&
      (session.used || String(reply.getHeader('content-type') ?? '').startsWith('text/html'))) {
      sessions.write(reply, session)
    }
    return payload
  })
}

export function replaceSession(
  request: FastifyRequest,
  reply: FastifyReply,
  sessions: SessionKeeper,
  next: Session,
): void {
  request.session = next
  sessions.write(reply, next)
}

export { ERR_BAD_HOST }
