// /system/site-index.json: the site's full-text search index, serialised by MiniSearch with
// the fields the federated-wiki client loads (title, content). The client searches it, and
// keeps it current as its owner edits, so it must exist for every site (an empty one too).
// Built from the pages on first request and rebuilt only when the sitemap has changed since.
import MiniSearch from 'minisearch'
import type { Page } from '../schemas/page.js'
import type { Site } from './sites.js'

/** Item types whose `text` is prose worth searching (as the reference server indexes them). */
const TEXT_TYPES = new Set(['paragraph', 'markdown', 'html', 'reference', 'image', 'pagefold', 'math', 'mathjax', 'code', 'audio', 'video', 'frame'])

/** The words of one item's text: links keep their labels, markup and URLs go. */
function itemWords(text: string): string {
  return text
    .replace(/<[^>]{0,1000}>/g, ' ')
    .replace(/\[\[([^\]]{0,300})\]\]/g, '$1')
    .replace(/\[(https?:\/\/|\/)\S{0,2000}\s([^\]]{0,300})\]/g, '$2')
    .replace(/https?:\/\/\S+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
}

export function pageText(page: Page): string {
  return page.story
    .filter((item) => TEXT_TYPES.has(item.type) && typeof item.text === 'string')
    .map((item) => itemWords(item.text as string))
    .filter((words) => words !== '')
    .join(' ')
}

const built = new WeakMap<Site, { at: number; json: string }>()

export async function siteIndexJson(site: Site): Promise<string> {
  const sitemap = await site.sitemap()
  const cached = built.get(site)
  if (cached && cached.at === sitemap.modifiedAt) return cached.json
  const at = sitemap.modifiedAt
  const index = new MiniSearch({ fields: ['title', 'content'] })
  for (const entry of sitemap.entries()) {
    const stored = await site.store.getPage(entry.slug).catch(() => null)
    if (stored) index.add({ id: entry.slug, title: stored.page.title, content: pageText(stored.page) })
  }
  const json = JSON.stringify(index)
  // A change while building leaves the older stamp: the next request builds again.
  built.set(site, { at, json })
  return json
}
