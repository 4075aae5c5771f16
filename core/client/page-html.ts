// A server-rendered, script-free rendering of one page's story: what a reader without the
// client, and a search engine following sitemap.xml, see inside the client shell of
// /<slug>.html (the client replaces it with its own rendering when it starts).
import type { Page } from '../../schemas/page.js'
import { asSlug, replaceInternalLinks } from '../../schemas/page-text.js'

const ESCAPED = /[&<>"']/
/** Whether a byte is one of `&<>"'`: ASCII bytes that never occur inside a longer UTF-8 sequence. */
function special(byte: number): boolean {
  return byte === 0x26 || byte === 0x3c || byte === 0x3e || byte === 0x22 || byte === 0x27
}

/**
 * Escapes each of `&<>"'` as `&#NN;`, byte by byte: one pass to count, one to write. A page of
 * `<` costs as little as any other page of its size (a `replace` callback per match took
 * seconds on 4 MB of them).
 */
export function escapeHtml(text: string): string {
  if (!ESCAPED.test(text)) return text
  const input = Buffer.from(text, 'utf8')
  let count = 0
  for (let i = 0; i < input.length; i++) if (special(input[i] as number)) count++
  // Each escaped byte becomes five: & # two digits ;
  const output = Buffer.allocUnsafe(input.length + 4 * count)
  let at = 0
  for (let i = 0; i < input.length; i++) {
    const byte = input[i] as number
    if (!special(byte)) {
      output[at++] = byte
      continue
    }
    output[at++] = 0x26
    output[at++] = 0x23
    output[at++] = 0x30 + Math.floor(byte / 10)
    output[at++] = 0x30 + (byte % 10)
    output[at++] = 0x3b
  }
  return output.toString('utf8')
}

/** Escaping leaves `[`, `]` and newlines alone, so the links are those of the text itself. */
function linkify(escaped: string): string {
  return replaceInternalLinks(escaped, (name) => `<a class="internal" href="/${asSlug(name)}.html">${name}</a>`)
}

/** The story items as HTML, every text escaped before links are made. */
export function renderStory(page: Page): string {
  return page.story.map((item) => {
    const text = typeof item.text === 'string' ? item.text : ''
    const attributes = `class="item ${escapeHtml(item.type)}" data-id="${escapeHtml(item.id)}"`
    return `<div ${attributes}><p>${linkify(escapeHtml(text))}</p></div>`
  }).join('\n')
}
