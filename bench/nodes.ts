// Nodes: page reads and edits on a farm of PostgreSQL nodes, one node behind HAProxy beside three
// nodes behind HAProxy, same run, same database. HAProxy runs docs/haproxy.cfg (as the tests do,
// test/fixtures/haproxy.ts); each node is the CLI in its own process with the same store and
// cookie secret. 100 claimed sites imported into a throwaway PostgreSQL (fsync on). On a machine
// of 2 cores the three nodes share the cores of the one: this measures what the proxy, the events
// across nodes and the freshness barrier cost, not what more machines would give.
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
import { findHaproxy, launchHaproxy, type Haproxy } from '../test/fixtures/haproxy.js'
import { PostgresPageStore } from '../core/pages/postgres-store.js'
import { importFolder } from '../core/boot/store-transfer.js'

const SITES = 100
const SLUG = 'welcome-visitors'
const ITEM = '7b56f22a4b9ee974'
const secretOf = (host: string) => `bench-secret-${host}`

interface Front { name: string; port: number; cookies: Map<string, string> }

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

export async function nodes(opts: { seconds: number; rounds: number }): Promise<PartResult> {
  const pgBin = findPostgres()
  if (!pgBin) throw new Error('PostgreSQL is not installed (apt-get install postgresql)')
  const haproxyBin = findHaproxy()
  if (!haproxyBin) throw new Error('HAProxy is not installed (apt-get install haproxy)')
  const dir = scratchDir('nodes')
  const hosts = siteHosts(SITES)
  const seconds = Math.max(1, Math.round(opts.seconds / opts.rounds))
  const server = await launchPostgres(pgBin, { fsync: true })
  const children: Child[] = []
  const proxies: Haproxy[] = []
  const fronts: Front[] = []
  const edit = (f: Front, secs: number) => load(f.port, `/page/${SLUG}/action`, hosts, secs, {
    method: 'PUT', connections: 20,
    headersFor: (host) => ({
      cookie: f.cookies.get(host) as string, 'content-type': 'application/x-www-form-urlencoded',
    }),
    body: (_host, n) => editBody(n),
  })
  const read = (f: Front, secs: number) => load(f.port, `/${SLUG}.json`, hosts, secs, { connections: 20 })
  let reads: Map<string, LoadResult>
  let edits: Map<string, LoadResult>
  try {
    claimedSites(join(dir, 'files'), hosts, secretOf)
    const url = await server.createDatabase('bench')
    const store = await PostgresPageStore.open(url)
    const imported = await importFolder(store, join(dir, 'files')).finally(() => store.close())
    if (imported.problems.length > 0) throw new Error(`import: ${JSON.stringify(imported.problems[0])}`)
    for (let i = 1; i <= 3; i++) {
      children.push(await startWikifarm({
        name: `node${i}`, data: join(dir, 'unused'), flags: ['--trustProxy'], env: { WIKIFARM_STORE: url },
        logFile: join(dir, `node${i}.log`),
      }))
    }
    const one = await launchHaproxy(haproxyBin, [children[0]!.port], dir)
    proxies.push(one)
    const three = await launchHaproxy(haproxyBin, children.map((c) => c.port), dir)
    proxies.push(three)
    fronts.push({ name: 'one node behind HAProxy', port: one.port, cookies: await logins(one.port, hosts) })
    fronts.push({ name: 'three nodes behind HAProxy', port: three.port, cookies: await logins(three.port, hosts) })
    for (const f of fronts) await edit(f, 1) // warm-up: every site open where HAProxy sends it
    for (const f of fronts) await read(f, 1)
    reads = await alternate(fronts, opts.rounds, (f) => read(f, seconds), (a, b) => a.rps > b.rps)
    edits = await alternate(fronts, opts.rounds, (f) => edit(f, seconds), (a, b) => a.rps > b.rps)
    // Every node reads the last edit of every site, whichever node made it.
    for (const c of children) {
      const page = await fetchHost(c.port, hosts[0] as string, `/${SLUG}.json`)
      if (!page.body.includes('Edited by the bench')) throw new Error(`${c.name}: the edit is not in the page`)
    }
  } finally {
    for (const p of proxies) await p.stop()
    for (const c of children) await stopChild(c)
    await server.close()
  }
  const [oneName, threeName] = ['one node behind HAProxy', 'three nodes behind HAProxy']
  const row = (name: string, r: Map<string, LoadResult>) => {
    const x = r.get(name) as LoadResult
    const base = r.get(oneName) as LoadResult
    return [name, Math.round(x.rps), x.p50, x.p99, fmtRatio(ratio(x.rps, base.rps)), x.errors + x.non2xx]
  }
  const header = ['farm', 'per s', 'p50 ms', 'p99 ms', 'ratio to one node', 'errors']
  const rps = (r: Map<string, LoadResult>, name: string) => (r.get(name) as LoadResult).rps
  return {
    markdown: [
      `### Nodes: one PostgreSQL node beside three, both behind HAProxy (docs/haproxy.cfg), ${SITES} claimed ` +
        `sites, 20 connections, best of ${opts.rounds} alternating rounds of ${seconds} s`,
      '',
      'Reads are `GET /welcome-visitors.json` (one query each, no page cache); edits are an edit of one paragraph ' +
        '(one transaction, its notice sent on commit, heard by the other nodes). HAProxy spreads the sites over the ' +
        'nodes by Host. All nodes, HAProxy and PostgreSQL share one machine\'s cores, so three nodes cannot be ' +
        'faster ' +
        'here than one: the ratio is what the proxy hop, the events across nodes and the owner check\'s freshness ' +
        'barrier cost. On separate machines each node adds its own cores.',
      '',
      '**Reads**',
      '',
      table(header, [row(oneName, reads), row(threeName, reads)]),
      '',
      '**Edits**',
      '',
      table(header, [row(oneName, edits), row(threeName, edits)]),
    ].join('\n'),
    headlines: [
      { label: 'page reads/s: three nodes ÷ one node (HAProxy, one machine)', value: ratio(rps(reads, threeName),
        rps(reads, oneName)) },
      { label: 'edits/s: three nodes ÷ one node (HAProxy, one machine)', value: ratio(rps(edits, threeName),
        rps(edits, oneName)) },
    ],
  }
}
