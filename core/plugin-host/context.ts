// Building what a plugin sees of a request: its site (as a handle bound to that site), the
// session (an opaque label, never the cookie), the client's claimed identity (shape-checked)
// and a logger that names the plugin and the site.
import { createHmac } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Site, SiteRegistry } from '../pages/sites.js'
import type { Action } from '../../schemas/action.js'
import type { Identity, JsonValue, PluginLogger, SessionInfo, SiteHandle } from '../plugin-api.js'
import { validateAction } from '../pages/page-actions.js'
import { ERR_BAD_SLUG, ERR_VALIDATION } from '../errors.js'
import { isItemId, isSlug } from '../../schemas/page.js'

const MAX_LINEUP = 50

/**
 * A handle on one site: async, returning data. Pages come frozen from the store's cache.
 * It names the site rather than holding it, so a site closed when idle and opened again is
 * the same site to the plugin, and every write goes through the one open Site. It publishes
 * to this site's push subscribers only, as `plugin` (named in each message when given).
 */
/** What a site handle needs of the push hub (core/sockets/push-hub.ts), named here so the two
 * modules do not import each other. */
export interface Publisher {
  publish(site: string, key: string, value: JsonValue, plugin?: string): number
}

export function siteHandle(sites: SiteRegistry, name: string, push: Publisher, plugin?: string): SiteHandle {
  const site = (): Site => sites.open(name)
  return Object.freeze({
    name,
    async getPage(slug: string) {
      return isSlug(slug) ? (await site().getPage(slug))?.page ?? null : null
    },
    listSlugs: () => site().store.listSlugs(),
    async sitemap() {
      return (await site().sitemap()).entries()
    },
    // The plugin's slug and action are checked as a client's are: a slug is a file name in
    // this site's folder, and must never climb out of it.
    async applyAction(slug: string, action: Action) {
      if (!isSlug(slug))
        throw new ERR_BAD_SLUG(JSON.stringify(String(slug).slice(0, 120)))
      return site().applyAction(slug, validateAction(action))
    },
    async publish(key: string, value: JsonValue) {
      return push.publish(name, key, value, plugin)
    },
  })
}

/**
 * A session's label without using the session (no cookie for a fresh one), for the isolation
 * host: it sends the label with the request, and reads `id` (using it) only if the plugin did.
 */
export const sessionPeeks = new WeakMap<SessionInfo, () => string>()

/** An opaque label for a visitor on one site: stable, unlinkable across sites and plugins. */
export function sessionLabel(key: Buffer, sessionId: string, site: string, plugin: string): string {
  return createHmac('sha256', key).update(`${plugin}\0${site}\0${sessionId}`).digest('base64url').slice(0, 22)
}

function one(value: unknown): string | undefined {
  if (Array.isArray(value)) return value.length === 1 ? String(value[0]) : undefined
  return typeof value === 'string' ? value : undefined
}

/**
 * The client's claim of where it is, from the query (`page`, `item`, `lineup`) or headers
 * (`x-wiki-page`, `x-wiki-item`, `x-wiki-lineup`). Malformed values are a 400.
 */
export function readIdentity(query: Record<string, unknown>, headers: Record<string, unknown>): Identity {
  for (const name of ['page', 'item', 'lineup']) {
    // A repeated parameter is ambiguous: refused, never silently dropped.
    if (query[name] !== undefined && one(query[name]) === undefined)
      throw new ERR_VALIDATION(`identity "${name}" given more than once`)
  }
  const page = one(query.page) ?? one(headers['x-wiki-page'])
  const item = one(query.item) ?? one(headers['x-wiki-item'])
  const lineupRaw = one(query.lineup) ?? one(headers['x-wiki-lineup'])
  if (page !== undefined && !isSlug(page)) throw new ERR_VALIDATION('identity "page" must be a page slug')
  if (item !== undefined && !isItemId(item)) throw new ERR_VALIDATION('identity "item" must be 16 hex digits')
  const lineup = lineupRaw === undefined || lineupRaw === '' ? [] : lineupRaw.split(',')
  if (lineup.length > MAX_LINEUP || lineup.some((slug) => !isSlug(slug))) {
    throw new ERR_VALIDATION(`identity "lineup" must be up to ${MAX_LINEUP} comma-separated page slugs`)
  }
  return Object.freeze({ page: page ?? null, item: item ?? null, lineup: Object.freeze(lineup) })
}

/** The query without the identity parameters, which belong to the kernel. */
export function pluginQuery(query: Record<string, unknown>): Record<string, unknown> {
  const { page: _page, item: _item, lineup: _lineup, ...rest } = query
  return rest
}

/**
 * A PluginLogger for the kernel's own long-lived objects (a push connection): its pino child
 * and the pluginLogger over it are made the first time it logs, and until then it is one small
 * object with its methods on the prototype. Not handed to plugins, whose code may take the
 * methods off the object.
 */
export class LazyPluginLogger implements PluginLogger {
  readonly #parent: FastifyBaseLogger
  readonly #bindings: Record<string, unknown>
  #log: PluginLogger | null = null

  constructor(parent: FastifyBaseLogger, bindings: Record<string, unknown>) {
    this.#parent = parent
    this.#bindings = bindings
  }

  get #logger(): PluginLogger {
    return this.#log ??= pluginLogger(this.#parent.child(this.#bindings))
  }

  debug(message: string, data?: Record<string, unknown>): void { this.#logger.debug(message, data) }
  info(message: string, data?: Record<string, unknown>): void { this.#logger.info(message, data) }
  warn(message: string, data?: Record<string, unknown>): void { this.#logger.warn(message, data) }
  error(message: string, data?: Record<string, unknown>): void { this.#logger.error(message, data) }
}

export function pluginLogger(log: FastifyBaseLogger): PluginLogger {
  return {
    debug: (message, data) => log.debug(data ?? {}, message),
    info: (message, data) => log.info(data ?? {}, message),
    warn: (message, data) => log.warn(data ?? {}, message),
    error: (message, data) => log.error(data ?? {}, message),
  }
}
