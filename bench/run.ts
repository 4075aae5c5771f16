// npm run bench [-- part ... ] [--no-profile]: each part measures wikifarm beside a baseline
// in the same run, on 127.0.0.1, bounded in time, and reports ratios. With no part named, every
// part but soak runs. The parts run are written into docs/benchmarks.md (other parts' sections
// from an earlier run are kept) and the headline ratios into docs/benchmarks.svg.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { cleanupNow, cleanupOnExit } from './cleanup.js'
import { reads } from './reads.js'
import { scale } from './scale.js'
import { pluginLaunches } from './plugin-launches.js'
import { websockets } from './websockets.js'
import { txtzyme } from './txtzyme.js'
import { writes } from './writes.js'
import { dispatch } from './dispatch.js'
import { soak } from './soak.js'
import { isolation } from './isolation.js'
import { stores } from './stores.js'
import { nodes } from './nodes.js'
import { ratioChart } from './chart.js'
import type { Headline, PartResult } from './report.js'
import { PACKAGE_ROOT } from '../core/package-info.js'

const docFile = join(PACKAGE_ROOT, 'docs', 'benchmarks.md')
const chartFile = join(PACKAGE_ROOT, 'docs', 'benchmarks.svg')
const SITES = Number(process.env.BENCH_SITES ?? 1000)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const FD_NEEDED = 12_000

// 10,000 websocket clients need 10,000 descriptors in this process (and as many in the farm):
// raise the soft limit to the hard one by running again under `ulimit -n`, children inherit it.
const softLimit = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim())
if (Number.isFinite(softLimit) && softLimit < FD_NEEDED && !process.env.BENCH_FD_RAISED) {
  const again = spawnSync(
    'sh',
    [
      '-c',
      'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"',
      'sh',
      process.execPath,
      ...process.execArgv,
      ...process.argv.slice(1),
    ],
    { stdio: 'inherit', env: { ...process.env, BENCH_FD_RAISED: '1' } },
  )
  process.exit(again.status ?? 1)
}

const args = process.argv.slice(2).filter((a) => a !== '--')
const profile = !args.includes('--no-profile')
const parts: Record<string, () => Promise<PartResult>> = {
  reads: () => reads({ sites: SITES, seconds: SECONDS, rounds: ROUNDS, profile }),
  scale: () => scale(),
  plugins: () => pluginLaunches(SITES),
  websockets: () => websockets(),
  txtzyme: () => txtzyme(SECONDS, ROUNDS),
  writes: () => writes({ seconds: SECONDS, rounds: ROUNDS }),
  dispatch: () => dispatch({ seconds: SECONDS, rounds: ROUNDS }),
  soak: () => soak(Number(process.env.BENCH_SOAK_SECONDS ?? 120)),
  // The PostgreSQL store beside the file store (needs PostgreSQL installed: run by name).
  stores: () => stores({ seconds: SECONDS, rounds: ROUNDS }),
  // One PostgreSQL node beside three behind HAProxy (needs PostgreSQL and HAProxy: run by name).
  nodes: () => nodes({ seconds: SECONDS, rounds: ROUNDS }),
  // The cost of running a plugin in a worker thread or a child process, against in-process.
  isolation: () => isolation(),
}
// The default run is the list and stays well inside 10 minutes on a loaded machine (a
// run with the load average at 13 on 2 cores took 544 s with dispatch in it); dispatch
// (~50 s), stores (~30 s, needs PostgreSQL), nodes (~40 s, needs PostgreSQL and HAProxy) and soak
// (two minutes) run when named.
const DEFAULT = ['reads', 'scale', 'plugins', 'websockets', 'txtzyme', 'writes', 'isolation']
const ORDER = [
  'reads', 'scale', 'plugins', 'websockets', 'txtzyme', 'writes', 'isolation', 'stores', 'nodes', 'dispatch', 'soak',
]
const named = args.filter((a) => !a.startsWith('--'))
for (const name of named) {
  if (!parts[name]) {
    console.error(`unknown part ${name}; parts: ${ORDER.join(', ')}; flags: --no-profile`)
    process.exit(2)
  }
}
const chosen = named.length ? named : DEFAULT

const now = () => new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC'
const header =
  `Machine: ${cpus().length} × ${cpus()[0]?.model.trim() ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ` +
  `Node ${process.version}, ${process.platform}; run of ${now()}`

/** The sections already in the doc, by part name, so a partial run keeps the others. */
function previousSections(): Map<string, string> {
  const found = new Map<string, string>()
  if (!existsSync(docFile)) return found
  const doc = readFileSync(docFile, 'utf8')
  for (const m of doc.matchAll(/<!-- part (\w+) -->\n([\s\S]*?)<!-- \/part \1 -->/g)) found.set(m[1] as string, m[0])
  return found
}

/**
 * The doc's history: the figures of earlier runs beside the goals they were measured against,
 * written by hand between its markers and kept by every run (a run rewrites only its parts).
 */
function previousHistory(): string {
  if (!existsSync(docFile)) return ''
  return /<!-- history -->\n[\s\S]*?<!-- \/history -->\n/.exec(readFileSync(docFile, 'utf8'))?.[0] ?? ''
}

function headlinesOf(section: string): Headline[] {
  const json = /<!-- headlines (.*) -->/.exec(section)?.[1]
  return json ? JSON.parse(json) as Headline[] : []
}

function writeDoc(sections: Map<string, string>, seconds: number): void {
  const ordered = ORDER.filter((p) => sections.has(p)).map((p) => sections.get(p) as string)
  const headlines = ordered.flatMap(headlinesOf)
  const history = previousHistory()
  writeFileSync(chartFile, ratioChart(headlines, 'wikifarm against its baselines (right of 1× = wikifarm better)'))
  writeFileSync(docFile, `# Benchmarks

Written by \`npm run bench\` (bench/run.ts). Every figure is measured on 127.0.0.1 beside a
baseline run in the same run: a bare Fastify route, raw \`ws\`, direct pty writes, and the
reference federated-wiki farm (the \`wiki\` npm package, installed by the bench into a scratch
folder). The machine is a shared 2-core box where other work runs at the same time, so absolute
numbers are noisy: compare ratios, not values. Each part can run alone
(\`npm run bench -- reads\`); its section below says when it ran.

Parts: ${ORDER.join(', ')}. The default run is every part but stores and nodes (they need PostgreSQL,
nodes HAProxy too), dispatch
and soak (two minutes); run those by name, e.g. \`npm run bench -- soak\`. \`--no-profile\` skips the CPU
profile of the reads part.
\`BENCH_SECONDS\` (10) is each server's measuring time in a part, split over \`BENCH_ROUNDS\` (5)
alternating rounds; \`BENCH_SITES\` (1000) the farm size for reads and plugins;
\`BENCH_NO_REFERENCE=1\` leaves the reference farm out. The bench raises its open-file limit to
the hard limit itself (10,000 websockets need as many descriptors in the bench and in the farm);
if the hard limit is below 12,000, raise it first (\`ulimit -Hn\`, or \`nofile\` in
/etc/security/limits.conf).

${header}: parts ${chosen.join(', ')} in ${seconds} s.

![headline ratios](benchmarks.svg)

Every bar is oriented so that right of 1× means wikifarm does better: throughput is
wikifarm ÷ baseline; memory, latency and launches are baseline ÷ wikifarm.

${history}${ordered.join('\n\n')}
`)
}

cleanupOnExit()
const sections = previousSections()
console.log(header + '\n')
const started = performance.now()
let failed = false
for (const name of chosen) {
  const t0 = performance.now()
  console.log(`── ${name} …`)
  try {
    const result = await (parts[name] as () => Promise<PartResult>)()
    const section =
      `<!-- part ${name} -->\n${result.markdown}\n\n_Part \`${name}\` measured ${now()} in ` +
        `${Math.round((performance.now() - t0) / 1000)} s._\n` +
      `<!-- headlines ${JSON.stringify(result.headlines)} -->\n<!-- /part ${name} -->`
    sections.set(name, section)
    console.log(result.markdown + '\n')
  } catch (err) {
    failed = true
    console.error(`part ${name} failed:`, err)
    sections.set(name, `<!-- part ${name} -->\n### ${name}\n\nThis part failed in the run of ${now()}: ` +
      `${String((err as Error).message ?? err).split('\n')[0]}\n<!-- headlines [] -->\n<!-- /part ${name} -->`)
  }
  cleanupNow()
}
const seconds = Math.round((performance.now() - started) / 1000)
writeDoc(sections, seconds)
console.log(`wrote docs/benchmarks.md and docs/benchmarks.svg in ${seconds} s`)
process.exit(failed ? 1 : 0)
