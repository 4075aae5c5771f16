// Plugin dispatch: a plugin's REST route and websocket echo through the kernel, beside the same
// handlers registered directly on Fastify and @fastify/websocket, 100 sites.
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { scratchDir } from './cleanup.js'
import { serve, stop, load, type LoadResult, type Served } from './load.js'
import { echoLoad, type EchoResult } from './ws-load.js'
import { alternate } from './alternate.js'
import { fmtRatio, ratio, table, type PartResult } from './report.js'
import { siteHosts } from './farm-data.js'

const here = fileURLToPath(new URL('./', import.meta.url))
const DIRECT = 'direct on Fastify'
const KERNEL = 'through the kernel'

export async function dispatch(opts: { seconds: number; rounds: number }): Promise<PartResult> {
  const data = scratchDir('dispatch')
  const hosts = siteHosts(100)
  const servers: (Served & { name: string })[] = []
  const seconds = Math.max(1, Math.round(opts.seconds / opts.rounds))
  let results: Map<string, { rest: LoadResult; ws: EchoResult }>
  try {
    for (const [name, script] of [[DIRECT, 'direct-server.js'], [KERNEL, 'kernel-plugin-server.js']] as const) {
      servers.push({ name, ...await serve(join(here, script), { BENCH_DATA: data, BENCH_SITES: '100' }) })
    }
    for (const s of servers) {
      await load(s.port, '/plugin/bench-echo/echo', hosts, 2)
      await echoLoad(s.port, '/plugin/bench-echo', hosts, 50, 1)
    }
    // REST and websocket rounds are kept apart: each keeps its own best.
    const rest = await alternate(
      servers,
      opts.rounds,
      (s) => load(s.port, '/plugin/bench-echo/echo', hosts, seconds),
      (a, b) => a.rps > b.rps,
    )
    const ws = await alternate(servers, opts.rounds, (s) => echoLoad(s.port, '/plugin/bench-echo', hosts, 50, seconds),
      (a, b) => a.messagesPerSecond > b.messagesPerSecond)
    results = new Map(
      servers.map((s) => [s.name, { rest: rest.get(s.name) as LoadResult, ws: ws.get(s.name) as EchoResult }]),
    )
  } finally {
    for (const s of servers) await stop(s)
  }
  const base = results.get(DIRECT) as { rest: LoadResult; ws: EchoResult }
  const ours = results.get(KERNEL) as { rest: LoadResult; ws: EchoResult }
  return {
    markdown: [
      `### Plugin dispatch: GET /plugin/bench-echo/echo (100 connections) and a websocket text echo (50 clients), ` +
        `100 sites, best of ${opts.rounds} alternating rounds of ${seconds} s`,
      '',
      table(
        ['handler', 'REST req/s', 'p50 ms', 'p99 ms', 'ratio', 'echo msg/s', 'echo p50 ms', 'echo p99 ms', 'ratio'],
        [...results].map(([name, { rest: r, ws: w }]) => [
          name,
          Math.round(r.rps),
          r.p50,
          r.p99,
          fmtRatio(ratio(r.rps, base.rest.rps)),
          Math.round(w.messagesPerSecond),
          w.p50,
          w.p99,
          fmtRatio(ratio(w.messagesPerSecond, base.ws.messagesPerSecond)),
        ]),
      ),
    ].join('\n'),
    headlines: [
      { label: 'plugin REST req/s: kernel ÷ direct Fastify', value: ratio(ours.rest.rps, base.rest.rps) },
      {
        label: 'plugin ws echo msg/s: kernel ÷ direct',
        value: ratio(ours.ws.messagesPerSecond, base.ws.messagesPerSecond),
      },
    ],
  }
}
