// Fetching a page from another federated-wiki site, for a fork whose client did not send the
// page along. Bounded in time and size; only the owner's actions reach here.
import type { Page } from '../../schemas/page.js'
import { parsePage } from './page-store.js'
import { ERR_BAD_ACTION, ERR_PAGE_NOT_FOUND } from '../errors.js'

const SITE = /^[a-zA-Z0-9.-]{1,253}(:\d{1,5})?$/
const TIMEOUT_MS = 2000
const MAX_BYTES = 5 * 1024 * 1024

/** The body as text, refused as soon as it passes `max` bytes (not after reading it all). */
async function readCapped(response: Response, max: number): Promise<string> {
  if (Number(response.headers.get('content-length') ?? 0) > max) throw new Error('page too large')
  if (!response.body) return ''
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > max) {
      await reader.cancel()
      throw new Error('page too large')
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

export async function fetchRemotePage(site: string, slug: string): Promise<Page> {
  if (!SITE.test(site)) throw new ERR_BAD_ACTION(`fork site ${JSON.stringify(site.slice(0, 80))} is not a host name`)
  let text: string
  try {
    const response = await fetch(`http://${site}/${slug}.json`, { signal: AbortSignal.timeout(TIMEOUT_MS), redirect: 'error' })
    if (!response.ok) throw new Error(`status ${response.status}`)
    text = await readCapped(response, MAX_BYTES)
  } catch (err) {
    throw new ERR_PAGE_NOT_FOUND(`${slug} at ${site} (${(err as Error).message})`)
  }
  try {
    return parsePage(text, `${site}/${slug}.json`)
  } catch {
    throw new ERR_PAGE_NOT_FOUND(`${slug} at ${site} (not a wiki page)`)
  }
}
