// Stores: page reads and edits on one node, the file store beside the PostgreSQL store, same
// run. 100 claimed sites whose welcome-visitors page is stored (one edit each first, so a read
// is a stored page, not the default); the PostgreSQL farm gets the same sites through
// `importFolder`, as an operator moving a farm would. The server is a throwaway PostgreSQL
// (initdb in a scratch folder, test/fixtures/postgres.ts) with fsync on, as in production.
import { join } from 'node:path'
import { scratchDir } from './cleanup.js'
import { stopChild, type Child } from './children.js'
import { cookieHeader, fetchHost } from './http-client.js'
import { load, type LoadResult } from './load.js'
import { alternate } from './alternate.js'
import { startWikifarm } from './wikifarm-process.js'
import { claimedSites, siteHosts } from './farm-data.js'
import { fmtRatio, ratio, table, type PartResult } from './report.js'
import { findPostgres, launchPostgres } from '../test/fixtures/postgres.js'
import { PostgresPageStore } from '../core/pages/postgres-store.js'
import { importFolder } from '../core/boot/store-transfer.js'

const SITES = 100
const SLUG = 'welcome-visitors'
const ITEM = '7b56f22a4b9ee974'
const secretOf = (host: string) => `bench-secret-${host}`

type Farm = Child & { cookies: Map<string, string> }

async function logins(port: number, hosts: string[]): Promise<Map<string, string>> {
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

export async function stores(opts: { seconds: number; rounds: number }): Promise<PartResult> {
  const bin = findPostgres()
  if (!bin) throw new Error('PostgreSQL is not installed (apt-get install postgresql)')
  const dir = scratchDir('stores')
  const hosts = siteHosts(SITES)
  const seconds = Math.max(1, Math.round(opts.seconds / opts.rounds))
  const server = await launchPostgres(bin, { fsync: true })
  const farms: Farm[] = []
  const edit = (s: Farm, secs: number) => load(s.port, `/page/${SLUG}/action`, hosts, secs, {
    method: 'PUT', connections: 20,
    headersFor: (host) => ({
      cookie: s.cookies.get(host) as string, 'content-type': 'application/x-www-form-urlencoded',
    }),
    body: (_host, n) => editBody(n),
  })
  const read = (s: Farm, secs: number) => load(s.port, `/${SLUG}.json`, hosts, secs, { connections: 20 })
  let reads: Map<string, LoadResult>
  let edits: Map<string, LoadResult>
  try {
    claimedSites(join(dir, 'files'), hosts, secretOf)
    const url = await server.createDatabase('bench')
    const store = await PostgresPageStore.open(url)
    const imported = await importFolder(store, join(dir, 'files')).finally(() => store.close())
    if (imported.problems.length > 0) throw new Error(`import: ${JSON.stringify(imported.problems[0])}`)
    const files = await startWikifarm({ name: 'file store', data: join(dir, 'files'), logFile: join(dir, 'files.log') })
    farms.push({ ...files, cookies: await logins(files.port, hosts) })
    const pg = await startWikifarm({
      name: 'PostgreSQL store', data: join(dir, 'unused'), env: { WIKIFARM_STORE: url }, logFile: join(dir, 'pg.log'),
    })
    farms.push({ ...pg, cookies: await logins(pg.port, hosts) })
    for (const s of farms) await edit(s, 1) // every site's page stored, and warm-up
    for (const s of farms) await read(s, 1)
    reads = await alternate(farms, opts.rounds, (s) => read(s, seconds), (a, b) => a.rps > b.rps)
    edits = await alternate(farms, opts.rounds, (s) => edit(s, seconds), (a, b) => a.rps > b.rps)
    for (const s of farms) {
      const page = await fetchHost(s.port, hosts[0] as string, `/${SLUG}.json`)
      if (!page.body.includes('Edited by the bench')) throw new Error(`${s.name}: the edit is not in the page`)
    }
  } finally {
    for (const s of farms) await stopChild(s)
    await server.close()
  }
  const row = (name: string, r: Map<string, LoadResult>, base: LoadResult) => {
    const x = r.get(name) as LoadResult
    return [name, Math.round(x.rps), x.p50, x.p99, fmtRatio(ratio(x.rps, base.rps)), x.errors + x.non2xx]
  }
  const fileReads = reads.get('file store') as LoadResult
  const pgReads = reads.get('PostgreSQL store') as LoadResult
  const fileEdits = edits.get('file store') as LoadResult
  const pgEdits = edits.get('PostgreSQL store') as LoadResult
  const header = ['store', 'per s', 'p50 ms', 'p99 ms', 'ratio to the file store', 'errors']
  return {
    markdown: [
      `### Stores: one node, the file store beside the PostgreSQL store, ${SITES} claimed sites, 20 connections, ` +
        `best of ${opts.rounds} alternating rounds of ${seconds} s`,
      '',
      'Reads are `GET /welcome-visitors.json` of a stored page: the file store answers from its hot-page cache, the ' +
        'PostgreSQL store (no page cache) with one query each. Edits are an edit of one paragraph: the file store ' +
        'writes durably (temp file, fsync, rename); the PostgreSQL store commits the page and its sitemap entry ' +
        'in one ' +
        'transaction (fsync on, the server on the same machine, sharing its 2 cores).',
      '',
      '**Reads**',
      '',
      table(header, [row('file store', reads, fileReads), row('PostgreSQL store', reads, fileReads)]),
      '',
      '**Edits**',
      '',
      table(header, [row('file store', edits, fileEdits), row('PostgreSQL store', edits, fileEdits)]),
    ].join('\n'),
    headlines: [
      { label: 'page reads/s: PostgreSQL store ÷ file store', value: ratio(pgReads.rps, fileReads.rps) },
      { label: 'edits/s: PostgreSQL store ÷ file store', value: ratio(pgEdits.rps, fileEdits.rps) },
    ],
  }
}
