// npm run bench [-- part ...]: each part measures wikifarm beside a baseline run in the same
// process tree, on 127.0.0.1, bounded in time, and prints ratios. Parts: reads, dispatch, txtzyme, push (fan-out latency, no baseline).
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir, cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { serve, stop, load, type LoadResult, type Served } from './load.js'
import { echoLoad, type EchoResult } from './ws-load.js'
import { txtzyme } from './txtzyme.js'
import { push } from './push.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const SITES = Number(process.env.BENCH_SITES ?? 1000)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)

function row(name: string, r: LoadResult, base: LoadResult): string {
  return `| ${name} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${(r.rps / base.rps).toFixed(2)} | ${r.errors + r.non2xx} |`
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)

/**
 * Runs the subject and its baseline side by side: both started, both warmed, then ROUNDS
 * alternating rounds of SECONDS / ROUNDS each, the order flipped every round, keeping each
 * one's best. A burst of load from elsewhere then hurts one round, not one side.
 */
async function alternate(servers: readonly (readonly [string, string])[], env: Record<string, string>,
  warm: (port: number) => Promise<unknown>, measure: (name: string, port: number, seconds: number) => Promise<void>): Promise<void> {
  const started: [string, Served][] = []
  try {
    for (const [name, script] of servers) started.push([name, await serve(join(here, script), env)])
    for (const [, served] of started) await warm(served.port)
    const seconds = Math.max(1, Math.round(SECONDS / ROUNDS))
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? started : [...started].reverse()
      for (const [name, served] of order) await measure(name, served.port, seconds)
    }
  } finally {
    for (const [, served] of started) await stop(served)
  }
}

async function reads(): Promise<string> {
  const data = mkdtempSync(join(tmpdir(), 'wikifarm-bench-'))
  const hosts = Array.from({ length: SITES }, (_, i) => `site${i}.example`)
  // Site folders exist, as on a farm in service; the page itself is each site's default page.
  for (const host of hosts) mkdirSync(join(data, host, 'pages'), { recursive: true })
  const results: Record<string, LoadResult> = {}
  try {
    await alternate([['bare Fastify (Map lookup)', 'bare-server.ts'], ['wikifarm', 'wikifarm-server.ts']],
      { BENCH_DATA: data, BENCH_SITES: String(SITES) },
      (port) => load(port, '/welcome-visitors.json', hosts, 2), // warm-up: opens every site
      async (name, port, seconds) => {
        const r = await load(port, '/welcome-visitors.json', hosts, seconds)
        if (!results[name] || r.rps > (results[name] as LoadResult).rps) results[name] = r
      })
  } finally {
    rmSync(data, { recursive: true, force: true })
  }
  const base = results['bare Fastify (Map lookup)'] as LoadResult
  return [
    `### Page reads: GET /welcome-visitors.json, ${SITES} sites, Host rotating, 100 connections, best of ${ROUNDS} alternating rounds of ${Math.max(1, Math.round(SECONDS / ROUNDS))} s`,
    '',
    '| server | req/s | p50 ms | p99 ms | ratio to bare | errors |',
    '|---|---|---|---|---|---|',
    ...Object.entries(results).map(([name, r]) => row(name, r, base)),
  ].join('\n')
}

async function dispatch(): Promise<string> {
  const data = mkdtempSync(join(tmpdir(), 'wikifarm-bench-'))
  const hosts = Array.from({ length: 100 }, (_, i) => `site${i}.example`)
  const rest: Record<string, LoadResult> = {}
  const ws: Record<string, EchoResult> = {}
  try {
    await alternate([['direct on Fastify', 'direct-server.ts'], ['through the kernel', 'kernel-plugin-server.ts']],
      { BENCH_DATA: data, BENCH_SITES: '100' },
      async (port) => {
        await load(port, '/plugin/bench-echo/echo', hosts, 2)
        await echoLoad(port, '/plugin/bench-echo', hosts, 50, 1)
      },
      async (name, port, seconds) => {
        const r = await load(port, '/plugin/bench-echo/echo', hosts, seconds)
        if (!rest[name] || r.rps > (rest[name] as LoadResult).rps) rest[name] = r
        const w = await echoLoad(port, '/plugin/bench-echo', hosts, 50, seconds)
        if (!ws[name] || w.messagesPerSecond > (ws[name] as EchoResult).messagesPerSecond) ws[name] = w
      })
  } finally {
    rmSync(data, { recursive: true, force: true })
  }
  const restBase = rest['direct on Fastify'] as LoadResult
  const wsBase = ws['direct on Fastify'] as EchoResult
  return [
    `### Plugin dispatch: GET /plugin/bench-echo/echo (100 connections) and a websocket text echo (50 clients), 100 sites, best of ${ROUNDS} alternating rounds of ${Math.max(1, Math.round(SECONDS / ROUNDS))} s`,
    '',
    '| handler | REST req/s | p50 ms | p99 ms | ratio | echo msg/s | echo p50 ms | echo p99 ms | ratio |',
    '|---|---|---|---|---|---|---|---|---|',
    ...Object.keys(rest).map((name) => {
      const r = rest[name] as LoadResult
      const w = ws[name] as EchoResult
      return `| ${name} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${(r.rps / restBase.rps).toFixed(2)} | ` +
        `${Math.round(w.messagesPerSecond)} | ${w.p50} | ${w.p99} | ${(w.messagesPerSecond / wsBase.messagesPerSecond).toFixed(2)} |`
    }),
  ].join('\n')
}

const parts: Record<string, () => Promise<string>> = { reads, dispatch, txtzyme: () => txtzyme(SECONDS), push: () => push() }
const wanted = process.argv.slice(2).filter((a) => a !== '--')
const chosen = wanted.length ? wanted : Object.keys(parts)
const header = `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ` +
  `Node ${process.version}, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`
const sections: string[] = []
console.log(header + '\n')
for (const name of chosen) {
  const part = parts[name]
  if (!part) {
    console.error(`unknown part ${name}; parts: ${Object.keys(parts).join(', ')}`)
    process.exit(2)
  }
  const section = await part()
  sections.push(section)
  console.log(section + '\n')
}
const doc = `# Benchmarks

Written by \`npm run bench${wanted.length ? ` -- ${chosen.join(' ')}` : ''}\`. Every figure is measured on 127.0.0.1 beside a
baseline run in the same process tree, in the same run; ratios are wikifarm ÷ baseline (higher is
better for throughput). Numbers on a shared 2-core machine are noisy: compare ratios, not
absolute values.

${header}

${sections.join('\n\n')}
`
writeFileSync(join(here, '..', 'docs', 'benchmarks.md'), doc)
console.log('wrote docs/benchmarks.md')
