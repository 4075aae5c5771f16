// The starting pages every site has until its owner writes its own: served from
// core/default-pages/, never copied to disk until edited (a visit creates nothing).
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { SitemapEntry } from '../schemas/sitemap.js'
import { readPageFile, storedPage, type StoredPage } from './page-store.js'
import { sitemapEntry } from './sitemap.js'

export const DEFAULT_PAGES_DIR = fileURLToPath(new URL('./default-pages/', import.meta.url))
const SLUG = /^[a-z0-9-]{1,100}$/

export class DefaultPages {
  readonly #pages: Map<string, StoredPage>
  readonly #entries: SitemapEntry[]

  private constructor(pages: Map<string, StoredPage>) {
    this.#pages = pages
    this.#entries = [...pages].map(([slug, stored]) => sitemapEntry(slug, stored.page))
  }

  static async load(dir = DEFAULT_PAGES_DIR): Promise<DefaultPages> {
    const pages = new Map<string, StoredPage>()
    for (const slug of (await readdir(dir)).filter((name) => SLUG.test(name)).sort()) {
      const page = await readPageFile(join(dir, slug))
      pages.set(slug, storedPage(page))
    }
    return new DefaultPages(pages)
  }

  get(slug: string): StoredPage | null {
    return this.#pages.get(slug) ?? null
  }

  slugs(): string[] {
    return [...this.#pages.keys()]
  }

  sitemapEntries(): readonly SitemapEntry[] {
    return this.#entries
  }
}
