// A page's internal links, as the sitemap lists them and the Linkmap plugin maps them: one copy
// of the rule, built on the linear-time `[[link]]` scanner of schemas/page-text.ts, for the
// kernel and for plugins (which may import schemas/, never core/).
import type { Page } from './page.js'
import { asSlug, internalLinks } from './page-text.js'

/** The internal links of a page: linked slug to the id of the first item that links there. */
export function pageLinks(page: Page): Record<string, string> {
  const links: Record<string, string> = {}
  for (const item of page.story) {
    // Object.hasOwn, not `in`: a page linking [[Constructor]] must not find Object.prototype's.
    if (item.type === 'reference' && typeof item.slug === 'string' && !Object.hasOwn(links, item.slug))
      links[item.slug] = item.id
    if (typeof item.text !== 'string') continue
    for (const link of internalLinks(item.text)) {
      const slug = asSlug(link.name)
      if (slug && !Object.hasOwn(links, slug)) links[slug] = item.id
    }
  }
  return links
}
