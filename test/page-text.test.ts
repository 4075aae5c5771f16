// Every parser of page text runs in linear time: several megabytes shaped to make a
// backtracking regular expression try each position hundreds of times (a paragraph of `[`,
// `[[` repeated, `[[a` never closed, nested brackets, `<`, `[/` with and without spaces,
// runs of spaces) pass through the links, linkify, search words, synopsis, sitemap entry
// and server-rendered HTML within a bound that the old regular expressions missed by
// seconds. The scanners also find exactly what those regular expressions found.
import t from 'tap'
import MiniSearch from 'minisearch'
import {
  externalLinkLabels,
  internalLinks,
  replaceInternalLinks,
  stripTags,
  collapseSpaces,
} from '../schemas/page-text.js'
import { sitemapEntry, synopsis } from '../core/pages/sitemap.js'
import { pageLinks } from '../schemas/links.js'
import { itemWords, pageText } from '../core/pages/site-index.js'
import { escapeHtml, renderStory } from '../core/client/page-html.js'
import type { Page } from '../schemas/page.js'

const MB = 1024 * 1024
/** Generous for a loaded 2-core machine: the old expressions took 2 to 28 s on 4 MB. */
const BOUND_MS = 1000

function repeat(unit: string, bytes: number): string {
  return unit.repeat(Math.ceil(bytes / unit.length))
}

const SHAPES: Record<string, string> = {
  'a paragraph of [': repeat('[', 4 * MB),
  '[[ repeated': repeat('[[', 4 * MB),
  '[[a never closed': repeat('[[a', 4 * MB),
  'nested brackets': repeat('[[', 2 * MB) + repeat(']]', 2 * MB),
  'a run of spaces': repeat(' ', 4 * MB),
  'a paragraph of <': repeat('<', 4 * MB),
  '[/ without spaces': repeat('[/', 4 * MB),
  '[/ with spaces, never closed': repeat('[/ ', 4 * MB),
  '[http:// repeated': repeat('[http://', 4 * MB),
  'links of 301 characters': repeat(`[[${'x'.repeat(301)}]]`, 4 * MB),
  '[[ and newlines': repeat('[[x\n', 4 * MB),
}

function pageOf(text: string): Page {
  return { title: 'Pathological', story: [{ type: 'paragraph', id: 'a'.repeat(16), text }] }
}

const PARSERS: Record<string, (page: Page) => unknown> = {
  'links (sitemap, linkmap)': pageLinks,
  synopsis,
  'sitemap entry': (page) => sitemapEntry('pathological', page),
  'search words': pageText,
  'search index (MiniSearch tokenising)': (page) => new MiniSearch({ fields: ['title', 'content'] })
    .add({ id: 'p', title: page.title, content: pageText(page) }),
  'server-rendered HTML (linkify)': renderStory,
}

for (const [shape, text] of Object.entries(SHAPES)) {
  t.test(`${shape}: ${(text.length / MB).toFixed(0)} MB through every parser`, async (t) => {
    const page = pageOf(text)
    for (const [name, parse] of Object.entries(PARSERS)) {
      const started = performance.now()
      parse(page)
      const ms = performance.now() - started
      t.ok(ms < BOUND_MS, `${name}: ${ms.toFixed(0)} ms (bound ${BOUND_MS} ms)`)
    }
  })
}

// The rules the scanners replace, as regular expressions: on short texts they are fast, and
// the scanners must agree with them on every text.
const OLD_LINK = /\[\[([^\]\n]{1,300})\]\]/g
const OLD_TAG = /<[^>]{0,1000}>/g
const OLD_EXTERNAL = /\[(https?:\/\/|\/)\S{0,2000}\s([^\]]{0,300})\]/g

function randomText(random: () => number, length: number): string {
  const pieces = ['[', ']', '[[', ']]', '\n', ' ', 'a', 'B c', '<', '>', '/', 'http://', 'https://x', '\u00a0', '\t']
  let text = ''
  while (text.length < length) text += pieces[Math.floor(random() * pieces.length)]
  return text
}

function seeded(seed: number): () => number {
  let s = seed
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  }
}

t.test('the scanners find what the regular expressions found', async (t) => {
  const random = seeded(14)
  let linksSeen = 0
  for (let n = 0; n < 3000; n++) {
    const text = randomText(random, 1 + Math.floor(random() * 80))
    const expected = [...text.matchAll(OLD_LINK)].map((m) => [m.index, (m.index ?? 0) + m[0].length, m[1]])
    const found = [...internalLinks(text)].map((l) => [l.start, l.end, l.name])
    linksSeen += found.length
    if (JSON.stringify(found) !== JSON.stringify(expected)) t.same(found, expected, `links of ${JSON.stringify(text)}`)
    const linked = replaceInternalLinks(text, (name) => `<${name}>`)
    const linkedOld = text.replace(OLD_LINK, (_m, name: string) => `<${name}>`)
    if (linked !== linkedOld) t.equal(linked, linkedOld, `replaced links of ${JSON.stringify(text)}`)
    const stripped = stripTags(text)
    if (stripped !== text.replace(OLD_TAG, ' '))
      t.equal(stripped, text.replace(OLD_TAG, ' '), `tags of ${JSON.stringify(text)}`)
    const labels = externalLinkLabels(text)
    if (labels !== text.replace(OLD_EXTERNAL, '$2'))
      t.equal(labels, text.replace(OLD_EXTERNAL, '$2'), `external links of ${JSON.stringify(text)}`)
    const collapsed = collapseSpaces(text)
    if (collapsed !== text.replace(/\s+/g, ' ').trim())
      t.equal(collapsed, text.replace(/\s+/g, ' ').trim(), `spaces of ${JSON.stringify(text)}`)
    const escaped = escapeHtml(text)
    const escapedOld = text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
    if (escaped !== escapedOld) t.equal(escaped, escapedOld, `escaped ${JSON.stringify(text)}`)
  }
  t.ok(linksSeen > 100, `the random texts held links (${linksSeen})`)
  t.same([...internalLinks('[[[a]] [[b\nc]] [[]] [[d]]')].map((l) => l.name), ['[a', 'd'])
  t.equal(externalLinkLabels('see [http://example.com Example] and [/view/x here]'), 'see Example and here')
  t.equal(itemWords('<b>bold</b> [[Some Page]] [https://x.org label] https://y.org  end'), 'bold Some Page label end')
})
