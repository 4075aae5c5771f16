// Page reads: GET /welcome-visitors.json on a farm of 1,000 sites, the Host rotating over them,
// 100 connections. Side by side in one run: a bare Fastify route answering the same bytes from
// memory after a Map lookup (the practical limit), wikifarm (CLI, quiet), wikifarm logging
// every request (as the reference always does), and the reference farm. Optionally a CPU
// profile of a separate wikifarm process under the same load, so profiling never slows the
// measured rows.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { scratchDir } from './cleanup.js'
import { freePort, stopChild } from './children.js'
import { serve, stop, load, type LoadResult } from './load.js'
import { visitAll } from './http-client.js'
import { alternate } from './alternate.js'
import { startWikifarm } from './wikifarm-process.js'
import { referenceFarm, startReference } from './reference-farm.js'
import { summariseProfile } from './cpu-profile.js'
import { makeSiteFolders, siteHosts } from './farm-data.js'
import { fmtRatio, ratio, table, type PartResult } from './report.js'
import type { ChildProcess } from 'node:child_process'

const here = fileURLToPath(new URL('./', import.meta.url))
const PATH = '/welcome-visitors.json'
const BARE = 'bare Fastify (Map lookup)'
const WIKIFARM = 'wikifarm, --logLevel warn'
/** What ships: no flags, so the default level (info) and one access line per request. */
const WIKIFARM_LOGGING = 'wikifarm, default flags (logging every request)'
const WIKIFARM_METRICS = 'wikifarm, --logLevel warn, metrics on'
const REFERENCE = 'reference farm (wiki)'

export interface ReadsOptions {
  sites: number
  seconds: number
  rounds: number
  profile: boolean
}

async function profileReads(hosts: string[], seconds: number): Promise<string> {
  const dir = scratchDir('profile')
  const data = join(dir, 'data')
  makeSiteFolders(data, hosts)
  const farm = await startWikifarm({
    data,
    nodeFlags: ['--cpu-prof', '--cpu-prof-dir', dir],
    // As shipped: the access line of every request is part of what is profiled.
    logLevel: null,
    logFile: join(dir, 'wikifarm.log'),
    name: 'wikifarm (profiled)',
  })
  let window: { fromMs: number; toMs: number }
  try {
    await visitAll(farm.port, hosts, PATH, 20)
    await load(farm.port, PATH, hosts, 1)
    // Only the samples of the measured load count: not boot, first visits or shutdown.
    const from = performance.now() - farm.spawnedAt
    await load(farm.port, PATH, hosts, seconds)
    window = { fromMs: from, toMs: performance.now() - farm.spawnedAt }
  } finally {
    await stopChild(farm)
  }
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
  if (!file) return '_No CPU profile was written (the profiled farm did not exit cleanly)._'
  const s = summariseProfile(join(dir, file), window)
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`
  return [
    `CPU profile of a separate wikifarm process with default flags (access log on, to a file; ` +
      `\`node --cpu-prof\`) under the same load, the samples of ` +
      `${seconds} s ` +
      `of load only (${Math.round(s.busyMs)} ms of them non-idle). Self time, as a share of non-idle time:`,
    '',
    table(
      ['function', 'where', 'self', 'mostly called from'],
      s.functions.map((f) => [
        `\`${f.name}\``,
        f.where ? `\`${f.where}\`` : '(native)',
        pct(f.share),
        f.caller ? `\`${f.caller}\`` : '',
      ]),
    ),
    '',
    'By area (package, wikifarm file, node core):',
    '',
    table(
      ['area', 'self'],
      s.areas.map((a) => [a.area, pct(a.share)]),
    ),
    '',
    `The access log (pino, core/http/access-log.ts, core/boot/log-destination.ts and the writes they make, ` +
      `with everything they call): ${pct(s.logging)} of non-idle time.`,
  ].join('\n')
}

export async function reads(opts: ReadsOptions): Promise<PartResult> {
  const hosts = siteHosts(opts.sites)
  const dir = scratchDir('reads')
  const ours = join(dir, 'wikifarm')
  const refData = join(dir, 'reference')
  makeSiteFolders(ours, hosts)
  makeSiteFolders(refData, hosts)
  const servers: { name: string; port: number; child: ChildProcess }[] = []
  const notes: string[] = []
  const ref = await referenceFarm()
  const seconds = Math.max(1, Math.round(opts.seconds / opts.rounds))
  let results: Map<string, LoadResult>
  try {
    const bare = await serve(join(here, 'bare-server.js'), { BENCH_SITES: String(opts.sites) })
    servers.push({ name: BARE, ...bare })
    const quiet = await startWikifarm({ data: ours })
    servers.push({ name: WIKIFARM, port: quiet.port, child: quiet.child })
    const logging = await startWikifarm({
      data: ours,
      logLevel: null,
      logFile: join(dir, 'wikifarm.log'),
      name: WIKIFARM_LOGGING,
    })
    servers.push({ name: WIKIFARM_LOGGING, port: logging.port, child: logging.child })
    // The same quiet farm with Prometheus metrics on (--metricsPort): what counting every
    // request by route and timing every store call costs.
    const measured = await startWikifarm({
      data: ours, flags: ['--metricsPort', String(await freePort())], name: WIKIFARM_METRICS,
    })
    servers.push({ name: WIKIFARM_METRICS, port: measured.port, child: measured.child })
    if (ref.ok) {
      const reference = await startReference(ref.install, { data: refData, logFile: join(dir, 'reference.log') })
      servers.push({ name: REFERENCE, port: reference.port, child: reference.child })
    } else {
      notes.push(
        `The reference farm could not be run: ${ref.reason}. Its row is missing; no figure is invented for it.`,
      )
    }
    // Warm-up: every site visited once (the reference creates a server per site on its first
    // visit), then two seconds of the real load.
    for (const s of servers) {
      const { failed } = await visitAll(s.port, hosts, PATH, 20)
      if (failed > 0) notes.push(`${s.name}: ${failed} of ${hosts.length} first visits failed.`)
      await load(s.port, PATH, hosts, 2)
    }
    results = await alternate(servers, opts.rounds, (s) => load(s.port, PATH, hosts, seconds), (a, b) => a.rps > b.rps)
  } finally {
    for (const s of servers) await stop(s)
  }
  const profile = opts.profile ? await profileReads(hosts, 5) : ''
  const base = results.get(BARE) as LoadResult
  const refResult = results.get(REFERENCE)
  const rows = servers.map((s) => {
    const r = results.get(s.name) as LoadResult
    return [s.name, Math.round(r.rps), r.p50, r.p99, fmtRatio(ratio(r.rps, base.rps)),
      refResult ? fmtRatio(ratio(r.rps, refResult.rps)) : '—', r.errors + r.non2xx]
  })
  const ourRps = (results.get(WIKIFARM) as LoadResult).rps
  const shippedRps = (results.get(WIKIFARM_LOGGING) as LoadResult).rps
  const metricsRps = (results.get(WIKIFARM_METRICS) as LoadResult).rps
  return {
    markdown: [
      `### Page reads: GET ${PATH}, ${opts.sites} sites, Host rotating, 100 connections, best of ${opts.rounds} ` +
        `alternating rounds of ${seconds} s`,
      '',
      'Every site was visited once and loaded for 2 s before the rounds. wikifarm runs as the CLI (`bin/wikifarm.js ' +
        '--farm`) ' +
        'with `--logLevel warn`; the second wikifarm row is the farm as shipped, with no flag for the log: one ' +
        'access line per request (level info) to stdout, here a file, as the reference logs with no way to turn ' +
        'it off (its log also goes to a file); the third has Prometheus ' +
        'metrics on (`--metricsPort`, docs/operators.md#metrics), not scraped during the rounds.' +
        (ref.ok
          ? ` Reference: wiki ${ref.install.version}, ` + '`--farm --security_type friends`, NODE_ENV=production.'
          : ''),
      '',
      table(['server', 'req/s', 'p50 ms', 'p99 ms', 'ratio to bare', 'ratio to reference', 'errors'], rows),
      ...notes.map((n) => `\n${n}`),
      ...(profile ? ['', profile] : []),
    ].join('\n'),
    headlines: [
      { label: 'reads req/s, default flags (access log): wikifarm ÷ bare Fastify', value: ratio(shippedRps, base.rps) },
      { label: 'reads req/s, --logLevel warn: wikifarm ÷ bare Fastify', value: ratio(ourRps, base.rps) },
      { label: 'reads req/s: wikifarm ÷ reference', value: refResult ? ratio(ourRps, refResult.rps) : null },
      { label: 'reads req/s: wikifarm, metrics on ÷ wikifarm', value: ratio(metricsRps, ourRps) },
    ],
  }
}
