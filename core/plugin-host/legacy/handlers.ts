// What the reference hangs on its Express app for server parts: `app.securityhandler` (friends
// security's isAuthorized / isAdmin / getUser) and `app.pagehandler` (get / put / slugs of the
// site's pages). Both answer for the site of the request being served; pages are read and
// written through that site's store, so the sitemap, events and push see a plugin's writes.
import type { IncomingMessage } from 'node:http'
import { PageValidator, isSlug, type Page } from '../../../schemas/page.js'
import { legacyScope, type LegacyRequestFacts } from './scope.js'


/** The facts of the request being served: from the request itself, else from the scope. */
export type FactsOf = (req: IncomingMessage | undefined) => LegacyRequestFacts | null

export interface LegacySecurityHandler {
  isAuthorized(req: IncomingMessage): boolean
  isAdmin(req: IncomingMessage): boolean
  getUser(req: IncomingMessage): string
  getOwner(): string
}

export function securityHandler(factsOf: FactsOf): LegacySecurityHandler {
  return {
    isAuthorized: (req) => factsOf(req)?.authorized ?? false,
    isAdmin: (req) => factsOf(req)?.admin ?? false,
    // friends' getUser names the logged-in friend; the secret stays with the kernel.
    getUser: (req) => (factsOf(req)?.authorized ? 'owner' : ''),
    getOwner: () => '',
  }
}

type GetCallback = (err: Error | null, page?: Page | string, status?: number) => void
type PutCallback = (err: Error | null) => void
type SlugsCallback = (err: Error | null, slugs?: string[]) => void

export interface LegacyPageHandler {
  get(slug: string, done: GetCallback): void
  put(slug: string, page: unknown, done: PutCallback): void
  slugs(done: SlugsCallback): void
}

function currentSite(): LegacyRequestFacts['site'] | null {
  return legacyScope.getStore()?.request?.site ?? null
}

const outside = (): Error => new Error('pagehandler is only available while serving a request for a site')

/** The reference's page store API, callbacks and all, over the site of the current request. */
export function pageHandler(): LegacyPageHandler {
  return {
    get(slug, done) {
      const site = currentSite()
      if (!site) return done(outside())
      // The reference's callers pass `<slug>` (and its own recycler passes more): only slugs here.
      const name = slug.replace(/\.json$/, '')
      if (!isSlug(name)) return done(null, 'Page not found', 404)
      site.getPage(name).then((stored) => {
        if (stored) done(null, stored.page)
        else done(null, 'Page not found', 404)
      }, (err: unknown) => done(err as Error))
    },
    put(slug, page, done) {
      const site = currentSite()
      if (!site) return done(outside())
      if (!isSlug(slug)) return done(new Error(`not a page slug: ${JSON.stringify(String(slug).slice(0, 60))}`))
      if (!PageValidator.Check(page)) return done(new Error('not a page: it needs a title and a story of items'))
      site.putPage(slug, page).then(() => done(null), (err: unknown) => done(err as Error))
    },
    slugs(done) {
      const site = currentSite()
      if (!site) return done(outside())
      site.store.listSlugs().then((slugs) => done(null, slugs), (err: unknown) => done(err as Error))
    },
  }
}
