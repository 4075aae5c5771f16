// A server-rendered, script-free rendering of one page's story: what a reader without the
// client, and a search engine following sitemap.xml, see inside the client shell of
// /<slug>.html (the client replaces it with its own rendering when it starts).
import type { Page } from '../../schemas/page.js'
import { asSlug, replaceLinks } from '../../schemas/links.js'

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

function linkify(escaped: string): string {
  return replaceLinks(escaped, (name) => `<a class="internal" href="/${asSlug(name)}.html">${name}</a>`)
}

/** The story items as HTML, every text escaped before links are made. */
export function renderStory(page: Page): string {
  return page.story.map((item) => {
    const text = typeof item.text === 'string' ? item.text : ''
    const attributes = `class="item ${escapeHtml(item.type)}" data-id="${escapeHtml(item.id)}"`
    return `<div ${attributes}><p>${linkify(escapeHtml(text))}</p></div>`
  }).join('\n')
}
