// Stores: page reads and edits on one node, the file store beside the PostgreSQL store, same
// run. 100 claimed sites whose welcome-visitors page is stored (one edit each first, so a read
// is a stored page, not the default); the PostgreSQL farm gets the same sites through
// `importFolder`, as an operator moving a farm would. The server is a throwaway PostgreSQL
// (initdb in a scratch folder, test/fixtures/postgres.ts) with fsync on, as in production.
import { join } from 'node:path'
import { scratchDir } from './cleanup.js'
import { stopChild, type Child } from './children.js'
import { type LoadResult } from './load.js'
import { SITES, editLoad, logins, ownedSites, readLoad, checkEdited } from './owned-sites.js'
import { alternate } from './alternate.js'
import { startWikifarm } from './wikifarm-process.js'
import { siteHosts } from './farm-data.js'
import { fmtRatio, ratio, table, type PartResult } from './report.js'
import { findPostgres, launchPostgres } from '../test/fixtures/postgres.js'


type Farm = Child & { cookies: Map<string, string> }

export async function stores(opts: { seconds: number; rounds: number }): Promise<PartResult> {
  const bin = findPostgres()
  if (!bin) throw new Error('PostgreSQL is not installed (apt-get install postgresql)')
  const dir = scratchDir('stores')
  const hosts = siteHosts(SITES)
  const seconds = Math.max(1, Math.round(opts.seconds / opts.rounds))
  const server = await launchPostgres(bin, { fsync: true })
  const farms: Farm[] = []
  const edit = (s: Farm, secs: number) => editLoad(s.port, s.cookies, hosts, secs)
  const read = (s: Farm, secs: number) => readLoad(s.port, hosts, secs)
  let reads: Map<string, LoadResult>
  let edits: Map<string, LoadResult>
  try {
    const url = await ownedSites(server, dir, hosts)
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
    await checkEdited(farms, hosts[0] as string)
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
