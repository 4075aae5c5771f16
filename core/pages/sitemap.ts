// A site's sitemap, kept in memory and updated incrementally on every write; persisted to
// status/sitemap.json like the reference, and rebuilt on open when the file is missing,
// unreadable or older than a page (a crash between a page write and the sitemap write).
import secureJson from 'secure-json-parse'
import type { Page, StoryItem } from '../../schemas/page.js'
import type { SitemapEntry } from '../../schemas/sitemap.js'
import type { SiteStore } from './page-store.js'
import { pageLinks } from '../../schemas/links.js'

const SITEMAP_FILE = 'sitemap.json'
// Present on disk from before a page write until the sitemap that includes it is saved: a
// crash in between leaves it behind, and the next open rebuilds instead of trusting the file.
const DIRTY_FILE = 'sitemap.dirty'
const SYNOPSIS_MAX = 560


// The reference dates a page by its last dated journal entry that is not a fork.
function pageDate(page: Page): number | undefined {
  const journal = page.journal ?? []
  for (let i = journal.length - 1; i >= 0; i--) {
    const entry = journal[i]
    if (!entry || entry.type === 'fork' || !entry.date) continue
    const date = typeof entry.date === 'number' ? entry.date : Date.parse(entry.date)
    if (Number.isFinite(date)) return date
  }
  return undefined
}

// wiki-client's synopsis rule, so search results read the same as on any other farm.
export function synopsis(page: Page): string {
  const text = (item: StoryItem | undefined): string => (typeof item?.text === 'string' ? item.text : '')
  const para = (item: StoryItem | undefined): string => (item?.type === 'paragraph' ? text(item) : '')
  let s = typeof page.synopsis === 'string' ? page.synopsis : ''
  const [p1, p2] = page.story
  s ||= para(p1) || para(p2) || text(p1) || text(p2) || `A page with ${page.story.length} items.`
  return (s.trim().split(/\r|\n/, 1)[0] ?? '').substring(0, SYNOPSIS_MAX)
}

export function sitemapEntry(slug: string, page: Page): SitemapEntry {
  const entry: SitemapEntry = { slug, title: page.title, synopsis: synopsis(page) }
  const date = pageDate(page)
  if (date !== undefined) entry.date = date
  const links = pageLinks(page)
  if (Object.keys(links).length > 0) entry.links = links
  return entry
}

function parseStoredSitemap(data: Buffer | null): Map<string, SitemapEntry> | null {
  if (!data) return null
  try {
    const value: unknown = secureJson.parse(data.toString('utf8'), undefined, {
      protoAction: 'remove',
      constructorAction: 'remove',
    })
    if (!Array.isArray(value)) return null
    const entries = new Map<string, SitemapEntry>()
    for (const entry of value as SitemapEntry[]) {
      if (entry && typeof entry.slug === 'string') entries.set(entry.slug, entry)
    }
    return entries
  } catch {
    return null
  }
}

/** Sitemap versions, unique across every sitemap the farm opens. */
let versions = 0

export class SiteMap {
  readonly #store: SiteStore
  /** Moves on every change of the entries: what caches of whole-site renderings key on. */
  #version = ++versions
  #entries = new Map<string, SitemapEntry>()
  #json: string | null = null
  #flushing: Promise<void> | null = null
  #dirty = false
  /** Page writes begun and not yet reflected in the entries. */
  #pending = 0
  /** Whether the dirty marker is (or is about to be) on disk. */
  #marker = false
  #markerOps: Promise<void> = Promise.resolve()
  /** When the entries last changed (ms): the Last-Modified the client compares to decide whether to reload. */
  #modifiedAt = Date.now()

  private constructor(store: SiteStore) {
    this.#store = store
  }

  /** Loads the stored sitemap, rebuilding it from the pages when it cannot be trusted. */
  static async open(store: SiteStore): Promise<SiteMap> {
    const map = new SiteMap(store)
    const [data, savedAt, dirty, pages] = await Promise.all([
      store.readStatus(SITEMAP_FILE), store.statStatus(SITEMAP_FILE), store.statStatus(DIRTY_FILE), store.statPages(),
    ])
    const stored = parseStoredSitemap(data)
    map.#marker = dirty !== null
    const stale = !stored || savedAt === null || dirty !== null || pages.length !== stored.size ||
      pages.some((p) => !stored.has(p.slug) || p.mtimeMs > savedAt)
    if (!stale) {
      map.#entries = stored
      map.#modifiedAt = savedAt
      return map
    }
    for (const { slug } of pages) {
      const page = await store.getPage(slug).catch(() => null)
      if (page) map.#entries.set(slug, sitemapEntry(slug, page.page))
    }
    // A site with no pages and no sitemap stays without one: reading must not create folders.
    if (stored || pages.length > 0) map.#schedule()
    return map
  }

  get version(): number {
    return this.#version
  }

  get modifiedAt(): number {
    return this.#modifiedAt
  }

  get size(): number {
    return this.#entries.size
  }

  entries(): SitemapEntry[] {
    return [...this.#entries.values()]
  }

  has(slug: string): boolean {
    return this.#entries.has(slug)
  }

  toJSON(): string {
    this.#json ??= JSON.stringify(this.entries())
    return this.#json
  }

  /** Call before writing a page; resolves once a crash can no longer leave a trusted stale sitemap. */
  async beginWrite(): Promise<void> {
    this.#pending++
    if (!this.#marker) {
      this.#marker = true
      this.#markerOps = this.#markerOps.then(() => this.#store.writeStatus(DIRTY_FILE, ''))
    }
    try {
      await this.#markerOps
    } catch (err) {
      this.#pending--
      this.#marker = false
      this.#markerOps = Promise.resolve()
      throw err
    }
  }

  /** Ends a write begun with beginWrite: the page's new state (null: gone, undefined: unchanged). */
  endWrite(slug: string, page: Page | null | undefined): void {
    this.#pending--
    if (page === undefined) {
      // Nothing changed (a refused action): no sitemap to save, only the marker to clear.
      this.#flushing ??= this.#writeLoop().catch(() => {})
      return
    }
    if (page) this.#entries.set(slug, sitemapEntry(slug, page))
    else this.#entries.delete(slug)
    this.#schedule()
  }

  /** Coalesces bursts of writes into one file write, at most one in flight. */
  #schedule(): void {
    this.#json = null
    this.#version = ++versions
    this.#modifiedAt = Date.now()
    this.#dirty = true
    // Nobody awaits a save, so a failed one must not become an unhandled rejection (which
    // ends the process). The entries stay dirty and the next change retries; meanwhile the
    // file is older than the pages, and the next open rebuilds it.
    this.#flushing ??= this.#writeLoop().catch(() => {
      this.#dirty = true
    })
  }

  async #writeLoop(): Promise<void> {
    try {
      while (this.#dirty) {
        this.#dirty = false
        await this.#store.writeStatus(SITEMAP_FILE, JSON.stringify(this.entries(), null, 2))
      }
      if (this.#pending === 0 && this.#marker) {
        this.#marker = false
        this.#markerOps = this.#markerOps.then(() => this.#store.removeStatus(DIRTY_FILE))
        await this.#markerOps
      }
    } finally {
      this.#flushing = null
    }
  }

  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing
    await this.#markerOps
  }
}
