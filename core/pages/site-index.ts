// /system/site-index.json: the site's full-text search index, serialised by MiniSearch with
// the fields the federated-wiki client loads (title, content). The client searches it, and
// keeps it current as its owner edits, so it must exist for every site (an empty one too).
// Each site's index is built from its pages on first request, then kept current from the
// kernel's page events: an edit costs the work of that one page, not a read of the site.
import MiniSearch from 'minisearch'
import type { Page } from '../../schemas/page.js'
import type { EventBus } from './events.js'
import { collapseSpaces, externalLinkLabels, replaceInternalLinks, stripTags } from '../../schemas/page-text.js'
import type { Site } from './sites.js'

/** Item types whose `text` is prose worth searching (as the reference server indexes them). */
const TEXT_TYPES = new Set([
  'paragraph',
  'markdown',
  'html',
  'reference',
  'image',
  'pagefold',
  'math',
  'mathjax',
  'code',
  'audio',
  'video',
  'frame',
])
const FIELDS = ['title', 'content']
/** Characters of a page's item text that search indexes. */
export const SEARCH_TEXT_MAX = 256 * 1024

/**
 * The words of one item's text: links keep their labels, markup and URLs go. Every step is
 * linear in the text (see page-text.ts): the two regular expressions left cannot backtrack,
 * as nothing follows their one open-ended run.
 */
export function itemWords(text: string): string {
  return collapseSpaces(externalLinkLabels(replaceInternalLinks(stripTags(text), (name) => name))
    .replace(/https?:\/\/\S+/g, ' '))
}

/**
 * The searchable text of a page: its first SEARCH_TEXT_MAX characters of prose. Every client
 * downloads the whole index, and every edit re-indexes the page, so a page of megabytes must
 * not cost megabytes of index; real pages are far shorter.
 */
export function pageText(page: Page): string {
  const words: string[] = []
  let budget = SEARCH_TEXT_MAX
  for (const item of page.story) {
    if (budget <= 0) break
    if (!TEXT_TYPES.has(item.type) || typeof item.text !== 'string') continue
    const text = itemWords(item.text.length > budget ? item.text.slice(0, budget) : item.text)
    if (text === '') continue
    words.push(text)
    budget -= item.text.length
  }
  return words.join(' ')
}

interface SiteIndex {
  /** The index; every change is chained after the build, so none is lost while it runs. */
  index: Promise<MiniSearch>
  /** The serialisation, until the next change. */
  json: string | null
}

export class SiteIndexes {
  readonly #sites = new Map<string, SiteIndex>()

  constructor(events: EventBus) {
    events.on('page.changed', ({ site, slug, page }) => this.#change(site, (index) => {
      const doc = { id: slug, title: page.title, content: pageText(page) }
      if (index.has(slug)) index.replace(doc)
      else index.add(doc)
    }), 'site-index')
    events.on('page.deleted', ({ site, slug }) => this.#change(site, (index) => {
      if (index.has(slug)) index.discard(slug)
    }), 'site-index')
    // A closed site's pages may change on disk before it opens again: the next request rebuilds.
    events.on('site.closed', ({ site }) => { this.#sites.delete(site) }, 'site-index')
  }

  async json(site: Site): Promise<string> {
    // Another node's edits reach the index as events: wait for those committed before now.
    await site.fresh()
    let entry = this.#sites.get(site.name)
    if (!entry) {
      entry = { index: build(site), json: null }
      this.#sites.set(site.name, entry)
      // A failed build is forgotten, so the next request tries again.
      const failed = entry
      entry.index.catch(() => { if (this.#sites.get(site.name) === failed) this.#sites.delete(site.name) })
    }
    const index = await entry.index
    entry.json ??= JSON.stringify(index)
    return entry.json
  }

  /** Sites whose index is not built have nothing to update: their build will read the pages. */
  #change(site: string, apply: (index: MiniSearch) => void): void {
    const entry = this.#sites.get(site)
    if (!entry) return
    entry.json = null
    entry.index = entry.index.then((index) => {
      apply(index)
      return index
    })
  }
}

async function build(site: Site): Promise<MiniSearch> {
  const index = new MiniSearch({ fields: FIELDS })
  for (const entry of (await site.sitemap()).entries()) {
    const stored = await site.store.getPage(entry.slug).catch(() => null)
    if (stored) index.add({ id: entry.slug, title: stored.page.title, content: pageText(stored.page) })
  }
  return index
}
