// Page persistence behind an interface. The file store lays pages out exactly like the
// reference wiki-server (<site>/pages/<slug>, status/, recycle/), so an existing farm's data
// folder is served unchanged.
import type { ActionNote } from './store-notices.js'
import { readFile, readdir, rename, unlink, mkdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { LRUCache } from 'lru-cache'
import secureJson from 'secure-json-parse'
import { PageValidator, isSlug, type Page } from '../../schemas/page.js'
import type { SitemapEntry } from '../../schemas/sitemap.js'
import { removeLeftoverTemps, writeFileAtomic } from './atomic-file.js'
import { KeyedLock } from './keyed-lock.js'
import { StoreError } from './store-error.js'

/** The names the farm gives status files (owner.json, sitemap.json, favicon.png …). */
const STATUS_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/

/** A page as read: the parsed object and the exact JSON served for it. */
export interface StoredPage {
  readonly page: Page
  readonly json: string
}

export interface PageStat {
  slug: string
  mtimeMs: number
}

export interface UpdateOptions {
  backup?: boolean
  action?: ActionNote
}

/** The persistence of one site. Every method is async so a store may live anywhere. */
export interface SiteStore {
  getPage(slug: string): Promise<StoredPage | null>
  listSlugs(): Promise<string[]>
  statPages(): Promise<PageStat[]>
  /**
   * Runs `change` as the only writer of `slug`; a null result leaves the page as it was.
   * With `backup`, the page being replaced is first copied to the recycler (forks do this).
   * `action` names what changed, for a store that tells other nodes (store-notices.ts).
   */
  updatePage(slug: string, change: PageChange, options?: UpdateOptions): Promise<StoredPage | null>
  /** Moves a page to the recycler; returns what was moved, or null when there was no page. */
  recyclePage(slug: string): Promise<Page | null>
  getRecycled(slug: string): Promise<Page | null>
  listRecycled(): Promise<string[]>
  deleteRecycled(slug: string): Promise<boolean>
  readStatus(name: string): Promise<Buffer | null>
  writeStatus(name: string, data: string | Uint8Array): Promise<void>
  /**
   * Writes a status file only if it does not exist, atomically against every other writer, of
   * this process or of another node on the same store; false when it existed (left as it was).
   */
  createStatus(name: string, data: string | Uint8Array): Promise<boolean>
  removeStatus(name: string): Promise<void>
  statStatus(name: string): Promise<number | null>
  /** Resolves when every write started so far is on disk. */
  flush(): Promise<void>
  /**
   * Removes what interrupted writes of this site left behind (temp files of its pages,
   * recycled pages and status files); run when the site opens. Returns what it removed.
   */
  removeLeftovers(): Promise<string[]>
  /**
   * The sitemap entries when the store keeps them itself, each written in the same transaction
   * as its page (PostgreSQL); null when the farm keeps the sitemap (status/sitemap.json).
   */
  sitemapEntries(): Promise<SitemapEntry[] | null>
}

/** A change of one page, given the page as stored (null: none) and the JSON it is served as. */
export type PageChange = (current: Page | null, currentJson: string | null) => Page | null | Promise<Page | null>

/** Where a site lives: its name (the normalised host, or "default"), and its folder. */
export interface SiteLocation {
  readonly name: string
  /** The site's folder in the data folder; a store that keeps sites elsewhere keys them by name. */
  readonly root: string
}

export interface PageStore {
  /** The store of one site; opening creates nothing. */
  site(where: SiteLocation): SiteStore
  /** Whether the site has been written to: a farm serving `allowed: *` serves only these. */
  hasSite(where: SiteLocation): Promise<boolean>
  /** Lets go of what the store holds (a connection pool); the kernel calls it last. */
  close(): Promise<void>
}

export interface FilePageStoreOptions {
  /** Upper bound of the hot-page cache, in bytes of page JSON (shared by all sites). */
  cacheBytes?: number
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT'
}

/** A cache entry meaning "no such page file", kept for MISSING_TTL_MS. */
const MISSING: StoredPage = Object.freeze({ page: Object.freeze({ title: '', story: [] }), json: '' })
const MISSING_TTL_MS = 2000

/** Frozen all the way down: cached pages are shared by every reader, plugins included. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key])
  }
  return value
}

export function storedPage(page: Page): StoredPage {
  return Object.freeze({ page: deepFreeze(page), json: JSON.stringify(page) })
}

export function serializePage(page: Page): string {
  // The reference writes pretty JSON; matching it keeps diffs and other tools happy.
  return JSON.stringify(page, null, 2)
}

export function parsePage(text: string, where: string): Page {
  let value: unknown
  try {
    value = secureJson.parse(text, undefined, { protoAction: 'remove', constructorAction: 'remove' })
  } catch (err) {
    throw new StoreError(`${where} is not JSON: ${(err as Error).message}`, { cause: err })
  }
  if (!PageValidator.Check(value)) throw new StoreError(`${where} is not a wiki page`)
  return value
}

class FileSiteStore implements SiteStore {
  // One string per open site (the root the site already holds): the folders below it are
  // joined when used, since most sites are only read, and a read joins one path anyway.
  readonly #root: string
  readonly #cache: LRUCache<string, StoredPage>
  readonly #lock = new KeyedLock()

  constructor(root: string, cache: LRUCache<string, StoredPage>) {
    this.#root = root
    this.#cache = cache
  }

  get #pages(): string {
    return join(this.#root, 'pages')
  }

  get #status(): string {
    return join(this.#root, 'status')
  }

  get #recycle(): string {
    return join(this.#root, 'recycle')
  }

  #key(slug: string): string {
    return `${this.#root}\0${slug}`
  }

  async getPage(slug: string): Promise<StoredPage | null> {
    const cached = this.#cache.get(this.#key(slug))
    if (cached) return cached === MISSING ? null : cached
    const path = join(this.#root, 'pages', slug)
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      if (isMissing(err)) {
        // Default pages are read on every visit to a new site: remember the miss briefly, so
        // they cost no file-system call, yet a page copied in by hand shows up within seconds.
        this.#cache.set(this.#key(slug), MISSING, { ttl: MISSING_TTL_MS })
        return null
      }
      throw new StoreError(`${slug}: ${(err as Error).message}`, { cause: err })
    }
    const stored = storedPage(parsePage(text, `page ${slug}`))
    this.#cache.set(this.#key(slug), stored)
    return stored
  }

  async listSlugs(): Promise<string[]> {
    return (await this.#list(this.#pages)).sort()
  }

  async statPages(): Promise<PageStat[]> {
    const slugs = await this.listSlugs()
    const pages = this.#pages
    const stats = await Promise.all(slugs.map(async (slug) => {
      try {
        return { slug, mtimeMs: (await stat(join(pages, slug))).mtimeMs }
      } catch (err) {
        if (isMissing(err)) return null
        throw err
      }
    }))
    return stats.filter((s): s is PageStat => s !== null)
  }

  async #list(dir: string): Promise<string[]> {
    try {
      return (await readdir(dir)).filter((name) => isSlug(name))
    } catch (err) {
      if (isMissing(err)) return []
      throw new StoreError((err as Error).message, { cause: err })
    }
  }

  updatePage(slug: string, change: PageChange, options: UpdateOptions = {}): Promise<StoredPage | null> {
    return this.#lock.run(slug, async () => {
      const current = await this.getPage(slug)
      const next = await change(current ? current.page : null, current ? current.json : null)
      if (next === null) return null
      if (options.backup && current) await writeFileAtomic(join(this.#recycle, slug), serializePage(current.page))
      await writeFileAtomic(join(this.#pages, slug), serializePage(next))
      const stored = storedPage(next)
      this.#cache.set(this.#key(slug), stored)
      return stored
    })
  }

  recyclePage(slug: string): Promise<Page | null> {
    return this.#lock.run(slug, async () => {
      const current = await this.getPage(slug)
      if (!current) return null
      await mkdir(this.#recycle, { recursive: true })
      this.#cache.set(this.#key(slug), MISSING, { ttl: MISSING_TTL_MS })
      try {
        await rename(join(this.#pages, slug), join(this.#recycle, slug))
      } catch (err) {
        if (isMissing(err)) return null
        throw new StoreError((err as Error).message, { cause: err })
      }
      return current.page
    })
  }

  async getRecycled(slug: string): Promise<Page | null> {
    try {
      return parsePage(await readFile(join(this.#recycle, slug), 'utf8'), `recycled page ${slug}`)
    } catch (err) {
      if (isMissing(err)) return null
      throw err
    }
  }

  async listRecycled(): Promise<string[]> {
    return (await this.#list(this.#recycle)).sort()
  }

  async deleteRecycled(slug: string): Promise<boolean> {
    try {
      await unlink(join(this.#recycle, slug))
      return true
    } catch (err) {
      if (isMissing(err)) return false
      throw new StoreError((err as Error).message, { cause: err })
    }
  }

  async readStatus(name: string): Promise<Buffer | null> {
    try {
      return await readFile(join(this.#status, name))
    } catch (err) {
      if (isMissing(err)) return null
      throw new StoreError((err as Error).message, { cause: err })
    }
  }

  writeStatus(name: string, data: string | Uint8Array): Promise<void> {
    return this.#lock.run(`status/${name}`, async () => { await writeFileAtomic(join(this.#status, name), data) })
  }

  createStatus(name: string, data: string | Uint8Array): Promise<boolean> {
    return this.#lock.run(`status/${name}`, () => writeFileAtomic(join(this.#status, name), data, true))
  }

  removeStatus(name: string): Promise<void> {
    return this.#lock.run(`status/${name}`, async () => {
      await unlink(join(this.#status, name)).catch((err: unknown) => {
        if (!isMissing(err)) throw new StoreError((err as Error).message, { cause: err })
      })
    })
  }

  async statStatus(name: string): Promise<number | null> {
    try {
      return (await stat(join(this.#status, name))).mtimeMs
    } catch (err) {
      if (isMissing(err)) return null
      throw new StoreError((err as Error).message, { cause: err })
    }
  }

  flush(): Promise<void> {
    return this.#lock.drain()
  }

  async removeLeftovers(): Promise<string[]> {
    const sweep = (dir: string, folder: string, owns: (name: string) => boolean) =>
      removeLeftoverTemps(folder, owns).then((names) => names.map((n) => `${dir}/${n}`))
    const found = await Promise.all([
      sweep('pages', this.#pages, isSlug),
      sweep('recycle', this.#recycle, isSlug),
      sweep('status', this.#status, (name) => STATUS_NAME.test(name)),
    ])
    return found.flat()
  }

  sitemapEntries(): Promise<null> {
    return Promise.resolve(null)
  }
}

export class FilePageStore implements PageStore {
  readonly #cache: LRUCache<string, StoredPage>

  constructor(options: FilePageStoreOptions = {}) {
    this.#cache = new LRUCache<string, StoredPage>({
      maxSize: options.cacheBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (value) => Math.max(1, value.json.length * 3),
    })
  }

  site(where: SiteLocation): SiteStore {
    return new FileSiteStore(where.root, this.#cache)
  }

  async hasSite(where: SiteLocation): Promise<boolean> {
    const found = await stat(where.root).catch(() => null)
    return found?.isDirectory() === true
  }

  close(): Promise<void> {
    return Promise.resolve()
  }
}

/** Reads a page from a file outside any store (default pages, fixtures). */
export async function readPageFile(path: string): Promise<Page> {
  return parsePage(await readFile(path, 'utf8'), path)
}
