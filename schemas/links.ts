// Federated wiki's internal link, `[[Page Title]]` in an item's text, and its slug rule. One copy
// for everything that reads links: the sitemap, the Linkmap plugin, the server-rendered story
// and the search index.
import type { Page } from './page.js'

// `[[`, then 1 to 300 characters that are neither `]` nor a newline, then `]]`: bounded, so
// matching stays linear in the text.
const LINK = /\[\[([^\]\n]{1,300})\]\]/g

/** Federated wiki's slug rule: spaces to dashes, drop everything but letters, digits and dashes. */
export function asSlug(name: string): string {
  return name.replace(/\s/g, '-').replace(/[^A-Za-z0-9-]/g, '').toLowerCase()
}

/** The text with each link replaced by what `replace` makes of its title. */
export function replaceLinks(text: string, replace: (title: string) => string): string {
  return text.replace(LINK, (_match, title: string) => replace(title))
}

/** The internal links of a page: linked slug to the id of the first item that links there. */
export function pageLinks(page: Page): Record<string, string> {
  const links: Record<string, string> = {}
  for (const item of page.story) {
    // Object.hasOwn, not `in`: a page linking [[Constructor]] must not find Object.prototype's.
    if (item.type === 'reference' && typeof item.slug === 'string' && !Object.hasOwn(links, item.slug))
      links[item.slug] = item.id
    if (typeof item.text !== 'string') continue
    for (const match of item.text.matchAll(LINK)) {
      const slug = asSlug(match[1] as string)
      if (slug && !Object.hasOwn(links, slug)) links[slug] = item.id
    }
  }
  return links
}
