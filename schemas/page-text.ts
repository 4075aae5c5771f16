// The parsers of page text, each linear in the length of the text. Page text is written by
// visitors (anyone may claim a site of a promiscuous farm), and one paragraph is up to the
// item cap: a regular expression that backtracks on some shape of it stalls every site the
// farm serves. `/\[\[([^\]\n]{1,300})\]\]/g` on a 4 MB paragraph of `[` tries 300 characters
// at each of its 4 million positions. These scanners instead remember where the next closing
// mark is and only ever search forward from there, so each character is looked at a bounded
// number of times whatever the text.

/** The longest link name, as federated wiki's client links them. */
export const LINK_NAME_MAX = 300
/** The longest URL and label of an external link `[url label]` that search strips to its label. */
const URL_MAX = 2000
const LABEL_MAX = 300
/** The longest markup tag that search strips. */
const TAG_MAX = 1000

const RIGHT = 0x5d  // ]

/** JavaScript's `\s`, character by character. */
export function isSpace(code: number): boolean {
  return code === 0x20 || (code >= 0x09 && code <= 0x0d) || code === 0xa0 || code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) || code === 0x2028 || code === 0x2029 || code === 0x202f ||
    code === 0x205f || code === 0x3000 || code === 0xfeff
}

/** A search for `pattern` (one character class) from a position: its index, or -1. */
function searchFor(text: string, pattern: RegExp): (from: number) => number {
  const global = new RegExp(pattern.source, 'g')
  return (from) => {
    global.lastIndex = from
    return global.exec(text)?.index ?? -1
  }
}

/**
 * The next position at or after a given one where one of some characters stands, for
 * positions asked in increasing order: each character's last found position is reused until
 * it is passed, so the text is searched once over, however many times it is asked; the
 * searches themselves are the engine's own (`indexOf`, or a class like `\s` that cannot
 * backtrack). `text.length` when there is none.
 */
class NextOf {
  readonly #text: string
  readonly #search: Array<(from: number) => number>
  readonly #searchedFrom: number[]
  readonly #found: number[]

  constructor(text: string, what: string | RegExp) {
    this.#text = text
    this.#search = typeof what === 'string'
      ? [...what].map((c) => (from: number) => text.indexOf(c, from))
      : [searchFor(text, what)]
    this.#searchedFrom = this.#search.map(() => Number.POSITIVE_INFINITY)
    this.#found = this.#search.map(() => -1)
  }

  at(from: number): number {
    let nearest = this.#text.length
    for (let k = 0; k < this.#search.length; k++) {
      // [searchedFrom, found) holds none, so `found` is still the answer for any `from` in it.
      if (!(from >= (this.#searchedFrom[k] as number) && from <= (this.#found[k] as number))) {
        const at = (this.#search[k] as (from: number) => number)(from)
        this.#searchedFrom[k] = from
        this.#found[k] = at < 0 ? this.#text.length : at
      }
      nearest = Math.min(nearest, this.#found[k] as number)
    }
    return nearest
  }
}

export interface InternalLink {
  /** Where `[[` starts. */
  start: number
  /** Just past `]]`. */
  end: number
  /** The text between the brackets, as written. */
  name: string
}

/**
 * The internal links `[[name]]` of a text, left to right, exactly as
 * `/\[\[([^\]\n]{1,300})\]\]/g` matches them (the rule of federated wiki's client), in
 * linear time.
 */
export function* internalLinks(text: string): Generator<InternalLink> {
  const stops = new NextOf(text, ']\n')
  let from = 0
  for (;;) {
    const open = text.indexOf('[[', from)
    if (open < 0) return
    const start = open + 2
    const stop = stops.at(start)
    // No `]` anywhere after this `[[`: none after any later one either.
    if (stop >= text.length) return
    const length = stop - start
    const closed = text.charCodeAt(stop) === RIGHT && text.charCodeAt(stop + 1) === RIGHT
    if (length >= 1 && length <= LINK_NAME_MAX && closed) {
      yield { start: open, end: stop + 2, name: text.slice(start, stop) }
      from = stop + 2
    } else {
      // Every `[[` that starts before stop - 302 has a name too long for the same `]`: skip them.
      from = Math.max(open + 1, stop - LINK_NAME_MAX - 2)
    }
  }
}

/** `text` with each internal link replaced by what `replace` makes of it; the rest is copied. */
export function replaceInternalLinks(text: string, replace: (name: string) => string): string {
  let out = ''
  let copied = 0
  for (const link of internalLinks(text)) {
    out += text.slice(copied, link.start) + replace(link.name)
    copied = link.end
  }
  return copied === 0 ? text : out + text.slice(copied)
}

/** Federated wiki's slug rule: spaces to dashes, drop everything but letters, digits and dashes. */
export function asSlug(name: string): string {
  return name.replace(/\s/g, '-').replace(/[^A-Za-z0-9-]/g, '').toLowerCase()
}

/** Markup tags `<...>` (up to 1000 characters inside, no `>`) replaced by a space. */
export function stripTags(text: string): string {
  const closes = new NextOf(text, '>')
  let out = ''
  let copied = 0
  for (let open = text.indexOf('<'); open >= 0; open = text.indexOf('<', open + 1)) {
    const close = closes.at(open + 1)
    if (close >= text.length) break
    if (close - open - 1 > TAG_MAX) continue
    out += `${text.slice(copied, open)} `
    copied = close + 1
    open = close
  }
  return copied === 0 ? text : out + text.slice(copied)
}

function urlPrefixAt(text: string, at: number): number {
  if (text.startsWith('http://', at)) return 7
  if (text.startsWith('https://', at)) return 8
  if (text.charCodeAt(at) === 0x2f) return 1
  return 0
}

/**
 * External links `[url label]` (url starting http://, https:// or /) replaced by their label,
 * as `/\[(https?:\/\/|\/)\S{0,2000}\s([^\]]{0,300})\]/g` would, in linear time.
 */
export function externalLinkLabels(text: string): string {
  const spaces = new NextOf(text, /\s/)
  const closes = new NextOf(text, ']')
  let out = ''
  let copied = 0
  for (let open = text.indexOf('['); open >= 0; open = text.indexOf('[', open + 1)) {
    const prefix = urlPrefixAt(text, open + 1)
    if (prefix === 0) continue
    const space = spaces.at(open + 1 + prefix)
    if (space >= text.length) break
    if (space - (open + 1 + prefix) > URL_MAX) continue
    const close = closes.at(space + 1)
    if (close >= text.length) break
    if (close - space - 1 > LABEL_MAX) continue
    out += text.slice(copied, open) + text.slice(space + 1, close)
    copied = close + 1
    open = close
  }
  return copied === 0 ? text : out + text.slice(copied)
}

/** Runs of whitespace made one space, and none at either end: `text.replace(/\s+/g, ' ').trim()` in one pass. */
export function collapseSpaces(text: string): string {
  const words: string[] = []
  let start = -1
  for (let i = 0; i <= text.length; i++) {
    const space = i === text.length || isSpace(text.charCodeAt(i))
    if (space && start >= 0) {
      words.push(text.slice(start, i))
      start = -1
    } else if (!space && start < 0) {
      start = i
    }
  }
  return words.join(' ')
}
