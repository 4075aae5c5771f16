// Nodes: page reads and edits on a farm of PostgreSQL nodes, one node behind HAProxy beside three
// nodes behind HAProxy, same run, same database. HAProxy runs docs/haproxy.cfg (as the tests do,
// test/fixtures/haproxy.ts); each node is the CLI in its own process with the same store and
// cookie secret. 100 claimed sites imported into a throwaway PostgreSQL (fsync on). On a machine
// of 2 cores the three nodes share the cores of the one: this measures what the proxy, the events
// across nodes and the freshness barrier cost, not what more machines would give.
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
import { findHaproxy, launchHaproxy, type Haproxy } from '../test/fixtures/haproxy.js'


interface Front { name: string; port: number; cookies: Map<string, string> }

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
  const edit = (f: Front, secs: number) => editLoad(f.port, f.cookies, hosts, secs)
  const read = (f: Front, secs: number) => readLoad(f.port, hosts, secs)
  let reads: Map<string, LoadResult>
  let edits: Map<string, LoadResult>
  try {
    const url = await ownedSites(server, dir, hosts)
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
    await checkEdited(children, hosts[0] as string)
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
