// A server-rendered, script-free rendering of one page's story: what a reader without the
// client, and a search engine following sitemap.xml, see inside the client shell of
// /<slug>.html (the client replaces it with its own rendering when it starts).
import type { Page } from '../../schemas/page.js'
import { asSlug, replaceInternalLinks } from '../pages/page-text.js'

const ESCAPED = /[&<>"']/
function entity(code: number): string | null {
  switch (code) {
    case 0x26: return '&#38;'
    case 0x3c: return '&#60;'
    case 0x3e: return '&#62;'
    case 0x22: return '&#34;'
    case 0x27: return '&#39;'
    default: return null
  }
}

/** One pass that copies runs between the characters it escapes: a page of `<` costs no more than any other. */
export function escapeHtml(text: string): string {
  if (!ESCAPED.test(text)) return text
  const parts: string[] = []
  let copied = 0
  for (let i = 0; i < text.length; i++) {
    const escaped = entity(text.charCodeAt(i))
    if (escaped === null) continue
    if (i > copied) parts.push(text.slice(copied, i))
    parts.push(escaped)
    copied = i + 1
  }
  if (copied === 0) return text
  parts.push(text.slice(copied))
  return parts.join('')
}

/** Escaping leaves `[`, `]` and newlines alone, so the links are those of the text itself. */
function linkify(escaped: string): string {
  return replaceInternalLinks(escaped, (name) => `<a class="internal" href="/${asSlug(name)}.html">${name}</a>`)
}

/** The story items as HTML, every text escaped before links are made. */
export function renderStory(page: Page): string {
  return page.story.map((item) => {
    const text = typeof item.text === 'string' ? item.text : ''
    return `<div class="item ${escapeHtml(item.type)}" data-id="${escapeHtml(item.id)}"><p>${linkify(escapeHtml(text))}</p></div>`
  }).join('\n')
}
