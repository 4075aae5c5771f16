// The starting pages every site has until its owner writes its own: served from
// core/default-pages/, never copied to disk until edited (a visit creates nothing). Client
// plugins' documentation pages (about-<name>-plugin, from their pages/ folders) are found the
// same way, as the reference finds them, but are not listed in a site's sitemap.
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { SitemapEntry } from '../../schemas/sitemap.js'
import { readPageFile, storedPage, type StoredPage } from './page-store.js'
import { sitemapEntry } from './sitemap.js'
import { isSlug } from '../../schemas/page.js'

export const DEFAULT_PAGES_DIR = fileURLToPath(new URL('./default-pages/', import.meta.url))

export class DefaultPages {
  readonly #pages: Map<string, StoredPage>
  readonly #pluginPages: Map<string, StoredPage>
  readonly #entries: SitemapEntry[]

  private constructor(pages: Map<string, StoredPage>, pluginPages: Map<string, StoredPage>) {
    this.#pages = pages
    this.#pluginPages = pluginPages
    this.#entries = [...pages].map(([slug, stored]) => sitemapEntry(slug, stored.page))
  }

  /**
   * The farm's default pages from `dir`, and plugin pages from `pluginDirs` (the first of a
   * slug wins). A plugin page that does not parse is reported through `problem` and skipped.
   */
  static async load(
    dir = DEFAULT_PAGES_DIR,
    pluginDirs: string[] = [],
    problem: (message: string, pluginDir: string) => void = () => {},
  ): Promise<DefaultPages> {
    const pages = new Map<string, StoredPage>()
    for (const slug of (await readdir(dir)).filter((name) => isSlug(name)).sort()) {
      const page = await readPageFile(join(dir, slug))
      pages.set(slug, storedPage(page))
    }
    const pluginPages = new Map<string, StoredPage>()
    for (const pluginDir of pluginDirs) {
      for (const slug of (await readdir(pluginDir).catch(() => [] as string[]))
        .filter((name) => isSlug(name))
        .sort()) {
        if (pages.has(slug) || pluginPages.has(slug)) continue
        try {
          pluginPages.set(slug, storedPage(await readPageFile(join(pluginDir, slug))))
        } catch (err) {
          problem(`plugin page ${join(pluginDir, slug)} is skipped: ${(err as Error).message}`, pluginDir)
        }
      }
    }
    return new DefaultPages(pages, pluginPages)
  }

  get(slug: string): StoredPage | null {
    return this.#pages.get(slug) ?? this.#pluginPages.get(slug) ?? null
  }

  slugs(): string[] {
    return [...this.#pages.keys()]
  }

  sitemapEntries(): readonly SitemapEntry[] {
    return this.#entries
  }
}
