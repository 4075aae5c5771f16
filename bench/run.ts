// npm run bench [-- part ...]: each part measures wikifarm beside a baseline run in the same
// process tree, on 127.0.0.1, bounded in time, and prints ratios. Parts: reads.
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs'
import { tmpdir, cpus } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { serve, stop, load, type LoadResult } from './load.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const SITES = Number(process.env.BENCH_SITES ?? 1000)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10)

function row(name: string, r: LoadResult, base: LoadResult): string {
  return `| ${name} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${(r.rps / base.rps).toFixed(2)} | ${r.errors + r.non2xx} |`
}

async function reads(): Promise<string> {
  const data = mkdtempSync(join(tmpdir(), 'wikifarm-bench-'))
  const hosts = Array.from({ length: SITES }, (_, i) => `site${i}.example`)
  // Site folders exist, as on a farm in service; the page itself is each site's default page.
  for (const host of hosts) mkdirSync(join(data, host, 'pages'), { recursive: true })
  const results: Record<string, LoadResult> = {}
  try {
    for (const [name, script] of [['bare Fastify (Map lookup)', 'bare-server.ts'], ['wikifarm', 'wikifarm-server.ts']] as const) {
      const served = await serve(join(here, script), { BENCH_DATA: data, BENCH_SITES: String(SITES) })
      try {
        await load(served.port, '/welcome-visitors.json', hosts, 2) // warm-up: opens every site
        results[name] = await load(served.port, '/welcome-visitors.json', hosts, SECONDS)
      } finally {
        await stop(served)
      }
    }
  } finally {
    rmSync(data, { recursive: true, force: true })
  }
  const base = results['bare Fastify (Map lookup)'] as LoadResult
  return [
    `### Page reads: GET /welcome-visitors.json, ${SITES} sites, Host rotating, 100 connections, ${SECONDS} s`,
    '',
    '| server | req/s | p50 ms | p99 ms | ratio to bare | errors |',
    '|---|---|---|---|---|---|',
    ...Object.entries(results).map(([name, r]) => row(name, r, base)),
  ].join('\n')
}

const parts: Record<string, () => Promise<string>> = { reads }
const wanted = process.argv.slice(2).filter((a) => a !== '--')
const chosen = wanted.length ? wanted : Object.keys(parts)
console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, ${new Date().toISOString()}\n`)
for (const name of chosen) {
  const part = parts[name]
  if (!part) {
    console.error(`unknown part ${name}; parts: ${Object.keys(parts).join(', ')}`)
    process.exit(2)
  }
  console.log(await part())
  console.log()
}
