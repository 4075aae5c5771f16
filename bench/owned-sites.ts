// The load of the store parts (stores, nodes): 100 claimed sites, each logged in once, read and
// edited through one front (a farm or a proxy) with 20 connections. One copy for both parts, so
// their figures stay comparable.
import { join } from 'node:path'
import { cookieHeader, fetchHost } from './http-client.js'
import { load, type LoadResult } from './load.js'
import { claimedSites } from './farm-data.js'
import type { PostgresServer } from '../test/fixtures/postgres.js'
import { PostgresPageStore } from '../core/pages/postgres-store.js'
import { importFolder } from '../core/boot/store-transfer.js'

export const SITES = 100
export const SLUG = 'welcome-visitors'
const ITEM = '7b56f22a4b9ee974'
export const secretOf = (host: string): string => `bench-secret-${host}`

/** Logs in to every site through `port`; the session cookie of each. */
export async function logins(port: number, hosts: readonly string[]): Promise<Map<string, string>> {
  const cookies = new Map<string, string>()
  for (const host of hosts) {
    const answer = await fetchHost(port, host, '/auth/reclaim/', {
      method: 'POST', body: secretOf(host), headers: { 'content-type': 'text/plain' },
    })
    if (answer.status !== 200) throw new Error(`login on ${host} answered ${answer.status}`)
    cookies.set(host, cookieHeader(answer.cookies))
  }
  return cookies
}

function editBody(n: number): string {
  const item = { type: 'paragraph', id: ITEM, text: `Edited by the bench, edit ${n}.` }
  const action = { type: 'edit', id: ITEM, item, date: Date.now() }
  return `action=${encodeURIComponent(JSON.stringify(action))}`
}

/** Edits of the sites' welcome page for `seconds`, each as its owner. */
export function editLoad(port: number, cookies: Map<string, string>, hosts: string[], seconds: number):
  Promise<LoadResult> {
  return load(port, `/page/${SLUG}/action`, hosts, seconds, {
    method: 'PUT', connections: 20,
    headersFor: (host) => ({
      cookie: cookies.get(host) as string, 'content-type': 'application/x-www-form-urlencoded',
    }),
    body: (_host, n) => editBody(n),
  })
}

/** Reads of the sites' welcome page for `seconds`. */
export function readLoad(port: number, hosts: string[], seconds: number): Promise<LoadResult> {
  return load(port, `/${SLUG}.json`, hosts, seconds, { connections: 20 })
}

/**
 * The claimed sites as a folder (`dir/files`, the file store's data) and, through `importFolder`
 * as an operator moving a farm would, in a new database of `server`; its URL.
 */
export async function ownedSites(server: PostgresServer, dir: string, hosts: readonly string[]): Promise<string> {
  claimedSites(join(dir, 'files'), hosts, secretOf)
  const url = await server.createDatabase('bench')
  const store = await PostgresPageStore.open(url)
  const imported = await importFolder(store, join(dir, 'files')).finally(() => store.close())
  if (imported.problems.length > 0) throw new Error(`import: ${JSON.stringify(imported.problems[0])}`)
  return url
}

/** Throws unless each farm serves the bench's last edit of the first site. */
export async function checkEdited(farms: readonly { name: string; port: number }[], host: string): Promise<void> {
  for (const farm of farms) {
    const page = await fetchHost(farm.port, host, `/${SLUG}.json`)
    if (!page.body.includes('Edited by the bench')) throw new Error(`${farm.name}: the edit is not in the page`)
  }
}
