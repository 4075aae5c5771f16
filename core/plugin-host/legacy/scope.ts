// What a legacy plugin's code is running for: the plugin, and (while it serves a request) the
// request's site and what the kernel decided about its session. Carried by AsyncLocalStorage,
// so callbacks and timers a plugin starts while serving a request see the same site, and code
// it runs at start sees the farm.
import { AsyncLocalStorage } from 'node:async_hooks'
import type { Site } from '../../pages/sites.js'
import type { LegacyArgv } from './argv.js'

export interface LegacyRequestFacts {
  site: Site
  /** The owner of the site, or the farm administrator (friends' isAuthorized). */
  authorized: boolean
  /** The farm administrator (friends' isAdmin). */
  admin: boolean
  /** An opaque token standing for the proved friend secret, or null: never the secret itself. */
  friend: string | null
  argv: LegacyArgv
}

export interface LegacyScope {
  /** Which farm (kernel) the plugin belongs to: tests run several in one process. */
  farm: string
  plugin: string
  /** The site of a per-site instance; null for the shared one. */
  instance: string | null
  /** Null at start and in timers started outside a request. */
  request: LegacyRequestFacts | null
}

export const legacyScope = new AsyncLocalStorage<LegacyScope>()

/**
 * One object whose keys read the current scope's values: plugins keep the `argv` they were
 * given at start and read `argv.assets` inside their handlers, so the lookup must happen on
 * every read. Writes go to the farm-level copy (a plugin's own bookkeeping), never to a site's.
 */
export function scopedArgv(farm: LegacyArgv): LegacyArgv {
  const current = (): LegacyArgv => legacyScope.getStore()?.request?.argv ?? farm
  return new Proxy(farm, {
    get: (_target, key) => Reflect.get(current(), key),
    has: (_target, key) => Reflect.has(current(), key),
    ownKeys: () => Reflect.ownKeys(current()),
    getOwnPropertyDescriptor: (_target, key) => {
      const descriptor = Reflect.getOwnPropertyDescriptor(current(), key)
      return descriptor ? { ...descriptor, configurable: true } : undefined
    },
  })
}
