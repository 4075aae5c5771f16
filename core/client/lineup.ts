// The federated-wiki lineup URL: /<site>/<slug>[/<site>/<slug>…], where the site `view` means
// this wiki and `<slug>_rev<n>` asks for a revision. Each pair becomes a page of the shell.
import { SLUG_BODY } from '../../schemas/page.js'

const SITE = /^[a-zA-Z0-9:.-]{1,253}$/
// A lineup entry is a slug, or slug_rev<n> for an old revision.
const SLUG_OR_REVISION = new RegExp(`^${SLUG_BODY}(_rev[0-9]{1,9})?$`)
const MAX_PAGES = 20
/** First segments the kernel routes itself: such a path is never a lineup. */
const NOT_LINEUP = new Set([
  'plugin',
  'plugins',
  'auth',
  'system',
  'recycler',
  'security',
  'page',
  'remote',
  'proxy',
  'theme',
  'assets',
])

export interface LineupEntry {
  /** null for this wiki (the path said `view`). */
  site: string | null
  /** slug, or slug_rev<n> */
  id: string
}

/** The lineup a path names, or null when the path is not a lineup. */
export function parseLineup(path: string): LineupEntry[] | null {
  const parts = path.replace(/\/$/, '').split('/').slice(1)
  if (parts.length === 0 || parts.length % 2 !== 0 || parts.length > MAX_PAGES * 2) return null
  if (NOT_LINEUP.has(parts[0] ?? '')) return null
  const entries: LineupEntry[] = []
  for (let i = 0; i < parts.length; i += 2) {
    const site = parts[i] ?? ''
    const id = parts[i + 1] ?? ''
    if (!SITE.test(site) || !SLUG_OR_REVISION.test(id) || site.includes('..')) return null
    entries.push({ site: site === 'view' ? null : site.toLowerCase(), id })
  }
  return entries
}

/** The shell's title: the last page's slug, words spaced, as the reference shows it. */
export function lineupTitle(entries: LineupEntry[]): string {
  const last = entries[entries.length - 1]?.id.split('_rev')[0] ?? ''
  return last.replace(/-/g, ' ')
}
