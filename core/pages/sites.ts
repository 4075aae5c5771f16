// The farm's site registry: which hosts are served, where each site lives on disk, and the
// open sites in memory (opened lazily on first request, evicted when idle), so memory follows
// active sites rather than sites on disk.
import { resolve, sep } from 'node:path'
import { randomBytes } from 'node:crypto'
import secureJson from 'secure-json-parse'
import type { Page } from '../../schemas/page.js'
import type { Action } from '../../schemas/action.js'
import { OwnerValidator, type Owner } from '../../schemas/owner.js'
import type { PageStore, SiteStore, StoredPage } from './page-store.js'
import { SiteMap } from './sitemap.js'
import { applyAction, checkActionSize, fitPage, forksFrom, type PageLimits } from './page-actions.js'
import { fetchRemotePage } from './remote-pages.js'
import type { EventBus } from './events.js'
import type { DefaultPages } from './default-pages.js'
import { ERR_ALREADY_CLAIMED, ERR_PAGE_NOT_FOUND } from '../errors.js'
import { StoreError } from './store-error.js'
import { actionNote } from './store-notices.js'
import { stripWww } from '../http/site-router.js'

/**
 * Where a site keeps its session epoch, beside the reference's status files (owner.json,
 * sitemap.json, site-index.json, favicon.png), under a name the reference never uses.
 */
export const SESSIONS_FILE = 'wikifarm-sessions.json'

/** A new owner secret: 64 hex digits, like the reference's. */
export function newSecret(): string {
  return randomBytes(32).toString('hex')
}

export interface SiteRules {
  /** The data folder: the single site's folder, or the parent of every farm site's folder. */
  data: string
  farm: boolean
  /** Hosts served in farm mode; '*' means the site folders that already exist. Empty: no list. */
  allowed: string[]
  /** Domains whose subdomains are served in farm mode (longest suffix wins). */
  wikiDomains: string[]
  /** Milliseconds a site may stay unused before it is closed. */
  idleMs: number
  /** Size caps of items, pages and actions (413 beyond them). */
  limits: PageLimits
}

export class Site {
  readonly name: string
  readonly root: string
  readonly store: SiteStore
  lastUsed = Date.now()
  #sitemap: Promise<SiteMap> | null = null
  #owner: Promise<Owner | null> | null = null
  // The queues of claims and logouts, the sweep of leftovers: made on first need, since most
  // open sites are only ever read and memory follows open sites.
  #claims: Promise<unknown> | null = null
  #epoch: Promise<number> | null = null
  #logouts: Promise<unknown> | null = null
  #opened: Promise<string[]> | null = null
  readonly #events: EventBus
  readonly #defaults: DefaultPages
  readonly #limits: PageLimits
  /**
   * On a store other nodes write too: resolves once every change committed before the call has
   * reached this node (core/cluster/), so what this site keeps in memory is never older than a
   * commit that came before the request. Null on a store only this process writes.
   */
  readonly #sync: (() => Promise<void>) | null

  constructor(name: string, root: string, store: SiteStore, events: EventBus, defaults: DefaultPages,
    limits: PageLimits, sync: (() => Promise<void>) | null = null) {
    this.#sync = sync
    this.name = name
    this.root = root
    this.store = store
    this.#events = events
    this.#defaults = defaults
    this.#limits = limits
  }

  /**
   * What opening the site does on disk before its sitemap is read or anything written through
   * it: removing the temp files of writes a kill interrupted. Started on the first of those,
   * not on the first read: a read never sees a temp file (they are hidden names no slug
   * matches), so a site that is only read costs no directory scan. Best effort: a leftover that
   * cannot be removed costs disk space, never a page.
   */
  get opened(): Promise<string[]> {
    return this.#opened ??= this.store.removeLeftovers().catch(() => [])
  }

  /** Resolves once every change committed before the call has reached this node (see #sync). */
  async fresh(): Promise<void> {
    if (this.#sync) await this.#sync()
  }

  sitemap(): Promise<SiteMap> {
    return this.#sync ? this.#sync().then(() => this.#sitemapNow()) : this.#sitemapNow()
  }

  #sitemapNow(): Promise<SiteMap> {
    if (this.#sitemap) return this.#sitemap
    const reading: Promise<SiteMap> = this.opened.then(() => SiteMap.open(this.store)).then((map) => {
      if (this.#sitemap === reading) this.#sitemapOf = map
      return map
    }, (err: unknown) => {
      if (this.#sitemap === reading) this.#sitemap = null
      throw err
    })
    this.#sitemap = reading
    return reading
  }

  /** A stored page, else the farm's default page of that slug, else null. */
  async getPage(slug: string): Promise<StoredPage | null> {
    return (await this.store.getPage(slug)) ?? this.#defaults.get(slug)
  }

  async applyAction(slug: string, action: Action): Promise<Page> {
    const actionBytes = checkActionSize(action, this.#limits)
    const sitemap = await this.sitemap()
    const source = forksFrom(action)
    // A fork's page comes from the other site; fetched before taking the page's write lock.
    const forked = source ? action.forkPage ?? await fetchRemotePage(source, slug) : null
    let created = false
    await sitemap.beginWrite()
    let stored: StoredPage | null = null
    try {
      stored = await this.store.updatePage(slug, (current, currentJson) => {
        created = current === null
        // Editing a default page copies it into the site, as the reference does on first write.
        const base = forked ?? current ?? this.#defaults.get(slug)?.page ?? null
        const next = applyAction(base, action, slug, Date.now())
        // An action adds at most its own size twice (its journal entry and its item) to the
        // page it applies to: when that bound is under the cap, the page need not be measured.
        const bound = base === current && currentJson !== null
          ? Buffer.byteLength(currentJson) + 2 * actionBytes + 512 : Infinity
        return bound <= this.#limits.pageBytes ? next : fitPage(next, this.#limits)
      }, { backup: forked !== null, action: actionNote(action) })
    } finally {
      this.#endWrite(sitemap, slug, stored?.page)
    }
    if (!stored) throw new ERR_PAGE_NOT_FOUND(slug)
    if (created && sitemap.size === 1) this.#events.emit('site.created', { site: this.name })
    this.#events.emit('page.changed', { site: this.name, slug, action, page: stored.page })
    return stored.page
  }

  /**
   * Replaces a page as a whole (a legacy plugin's pagehandler.put, as the reference's page store
   * does): one writer per page, the sitemap and events as for an action. Reported to listeners
   * as a fork of the page onto itself, the nearest journal action to a replacement.
   */
  async putPage(slug: string, page: Page): Promise<Page> {
    const sitemap = await this.sitemap()
    let created = false
    await sitemap.beginWrite()
    let stored: StoredPage | null = null
    try {
      stored = await this.store.updatePage(slug, (current) => {
        created = current === null
        return structuredClone(page)
      }, { action: { type: 'fork' } })
    } finally {
      this.#endWrite(sitemap, slug, stored?.page)
    }
    if (!stored) throw new ERR_PAGE_NOT_FOUND(slug)
    if (created && sitemap.size === 1) this.#events.emit('site.created', { site: this.name })
    const action: Action = { type: 'fork', date: Date.now() }
    this.#events.emit('page.changed', { site: this.name, slug, action, page: stored.page })
    return stored.page
  }

  async recyclePage(slug: string): Promise<Page | null> {
    const sitemap = await this.sitemap()
    await sitemap.beginWrite()
    let page: Page | null = null
    try {
      page = await this.store.recyclePage(slug)
    } finally {
      this.#endWrite(sitemap, slug, page ? null : undefined)
    }
    if (page) {
      this.#events.emit('page.deleted', { site: this.name, slug })
    }
    return page
  }

  /**
   * Ends a write on the sitemap it began on. When another node's change made this site forget
   * its sitemap meanwhile, the one read since may predate this write: it is forgotten too.
   */
  #endWrite(sitemap: SiteMap, slug: string, page: Page | null | undefined): void {
    sitemap.endWrite(slug, page)
    if (page !== undefined && this.#sitemapOf !== sitemap) this.#sitemap = null
  }

  /** The sitemap the site holds now, if it has finished reading one. */
  #sitemapOf: SiteMap | null = null

  /**
   * Another node changed this site (or this node may have missed changes): what is kept in
   * memory is dropped and read again from the store when next asked for. `what` narrows it.
   */
  forget(what: 'all' | 'sitemap' | 'owner' | 'sessions' = 'all'): void {
    if (what === 'all' || what === 'sitemap') {
      this.#sitemap = null
      this.#sitemapOf = null
    }
    if (what === 'all' || what === 'owner') this.#owner = null
    if (what === 'all' || what === 'sessions') this.#epoch = null
  }

  owner(): Promise<Owner | null> {
    return this.#sync ? this.#sync().then(() => this.#ownerNow()) : this.#ownerNow()
  }

  /** The owner record as this node keeps it, read if need be, without waiting for other nodes' changes. */
  ownerAsKept(): Promise<Owner | null> {
    return this.#ownerNow()
  }

  #ownerNow(): Promise<Owner | null> {
    this.#owner ??= this.store.readStatus('owner.json').then((data) => {
      if (!data) return null
      const value: unknown = secureJson.parse(data.toString('utf8'), undefined, {
        protoAction: 'remove',
        constructorAction: 'remove',
      })
      if (!OwnerValidator.Check(value))
        throw new StoreError(`${this.name}: status/owner.json is not a friends owner record`)
      return value
    }).catch((err: unknown) => {
      this.#owner = null
      throw err
    })
    return this.#owner
  }

  /**
   * Claims an unclaimed site for `name` with `secret` (from `newSecret()`, shown to the
   * claimant once). The caller prepares its reply first: once owner.json is written, only
   * the reply tells the claimant the secret.
   */
  claim(name: string, secret: string): Promise<void> {
    // One claim at a time, so a second claimant sees the first one's owner and is refused
    // instead of overwriting owner.json with a secret the first claimant never learns.
    const result = (this.#claims ?? this.opened).then(() => this.#claimNow(name, secret))
    this.#claims = result.catch(() => undefined)
    return result
  }

  async #claimNow(name: string, secret: string): Promise<void> {
    if (await this.owner()) throw new ERR_ALREADY_CLAIMED()
    const owner: Owner = { name, friend: { secret } }
    // Created, never replaced: another node of the farm may be claiming the same site now, and
    // only one claimant may ever be told a secret that works.
    const claimed = this.store.createStatus('owner.json', JSON.stringify(owner, null, 2))
      .then((created) => created ? owner : null)
    this.#owner = claimed
    try {
      if (!await claimed) {
        this.#owner = null
        throw new ERR_ALREADY_CLAIMED()
      }
    } catch (err) {
      // A failed write leaves the site unclaimed, not stuck on the rejected promise.
      if (this.#owner === claimed) this.#owner = null
      throw err
    }
    this.#events.emit('site.claimed', { site: this.name, owner: name })
  }

  /**
   * The site's session epoch: a login carries the epoch it was made in and proves nothing
   * once the epoch has moved on. 0 until the first logout.
   */
  sessionEpoch(): Promise<number> {
    return this.#sync ? this.#sync().then(() => this.#epochNow()) : this.#epochNow()
  }

  #epochNow(): Promise<number> {
    this.#epoch ??= this.store.readStatus(SESSIONS_FILE).then((data) => {
      if (!data) return 0
      let value: unknown
      try {
        value = secureJson.parse(data.toString('utf8'))
      } catch {
        value = null
      }
      const epoch = (value as { epoch?: unknown } | null)?.epoch
      if (!Number.isSafeInteger(epoch) || (epoch as number) < 0) {
        // Failing closed: with the epoch unknown no login can be checked, so none is honoured.
        throw new StoreError(`${this.name}: status/${SESSIONS_FILE} is not {"epoch": <count of logouts>}`)
      }
      return epoch as number
    }).catch((err: unknown) => {
      this.#epoch = null
      throw err
    })
    return this.#epoch
  }

  /** Ends every login to this site, on every browser: the epoch moves on, durably, before this resolves. */
  endSessions(): Promise<number> {
    const result = (this.#logouts ?? this.opened).then(async () => {
      const next = (await this.sessionEpoch()) + 1
      const record = { epoch: next, ended: new Date().toISOString() }
      await this.store.writeStatus(SESSIONS_FILE, JSON.stringify(record, null, 2))
      this.#epoch = Promise.resolve(next)
      return next
    })
    this.#logouts = result.catch(() => undefined)
    return result
  }

  async flush(): Promise<void> {
    await this.store.flush()
    if (this.#sitemap) await (await this.#sitemap.catch(() => null))?.flush()
  }
}

/** Is `host` one of `domains` or a subdomain of one? Returns the longest match. */
export function matchDomain(host: string, domains: readonly string[]): string | null {
  let best: string | null = null
  for (const domain of domains) {
    if ((host === domain || host.endsWith(`.${domain}`)) && (best === null || domain.length > best.length))
      best = domain
  }
  return best
}

export class SiteRegistry {
  readonly rules: SiteRules
  readonly events: EventBus
  readonly #store: PageStore
  readonly #defaults: DefaultPages
  readonly #open = new Map<string, Site>()
  readonly #dataRoot: string
  #sweeper: NodeJS.Timeout | null = null
  /** Whether something other than requests keeps a site busy (open websocket connections). */
  inUse: (site: string) => boolean = () => false
  /** On a store other nodes write too, the cluster's freshness barrier (see Site); set before any site opens. */
  sync: (() => Promise<void>) | null = null

  constructor(rules: SiteRules, store: PageStore, events: EventBus, defaults: DefaultPages) {
    this.rules = rules
    this.events = events
    this.#store = store
    this.#defaults = defaults
    this.#dataRoot = resolve(rules.data)
    if (rules.idleMs > 0) {
      this.#sweeper = setInterval(() => { void this.evictIdle() }, Math.max(1000, rules.idleMs / 2))
      this.#sweeper.unref()
    }
  }

  get openCount(): number {
    return this.#open.size
  }

  openSites(): string[] {
    return [...this.#open.keys()]
  }

  /** The site folder for a normalised host, or null if it would leave the data folder. */
  folderFor(name: string): string | null {
    if (!this.rules.farm) return this.#dataRoot
    const folder = resolve(this.#dataRoot, name)
    return folder.startsWith(this.#dataRoot + sep) && !name.includes('/') ? folder : null
  }

  /**
   * The site name a normalised host is served as, or null when this farm does not serve it.
   * Creates nothing: unknown hosts leave no trace on disk.
   */
  async resolveName(host: string): Promise<string | null> {
    if (!this.rules.farm) return 'default'
    const name = stripWww(host)
    if (this.#open.has(name)) return name
    const { allowed, wikiDomains } = this.rules
    const folder = this.folderFor(name)
    if (!folder) return null
    // As in the reference farm: with both rules set, a host must pass both.
    if (wikiDomains.length > 0 && !matchDomain(name, wikiDomains)) return null
    if (allowed.length === 0 || allowed.includes(name)) return name
    if (allowed.includes('*')) return await this.#store.hasSite({ name, root: folder }) ? name : null
    return null
  }

  /** The open site of that name, opening it if need be. */
  open(name: string): Site {
    let site = this.#open.get(name)
    if (!site) {
      const root = this.folderFor(name)
      if (!root) throw new StoreError(`site ${name} resolves outside the data folder`)
      site = new Site(name, root, this.#store.site({ name, root }), this.events, this.#defaults, this.rules.limits,
        this.sync)
      this.#open.set(name, site)
      this.events.emit('site.opened', { site: name })
    }
    site.lastUsed = Date.now()
    return site
  }

  /** The open site of that name, without opening it. */
  opened(name: string): Site | undefined {
    return this.#open.get(name)
  }

  async evictIdle(now = Date.now()): Promise<number> {
    let evicted = 0
    for (const [name, site] of this.#open) {
      if (now - site.lastUsed < this.rules.idleMs || this.inUse(name)) continue
      await site.flush()
      // A request may have touched it while we flushed.
      if (now - site.lastUsed < this.rules.idleMs) continue
      this.#open.delete(name)
      this.events.emit('site.closed', { site: name })
      evicted++
    }
    return evicted
  }

  async close(): Promise<void> {
    if (this.#sweeper) clearInterval(this.#sweeper)
    await Promise.all([...this.#open.values()].map((site) => site.flush()))
  }
}
