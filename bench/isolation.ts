// Plugin isolation's cost: REST throughput, websocket round-trip latency and pipelined websocket
// throughput for one small plugin (test/fixtures/plugins-isolation/steady: GET /hello, a text
// echo socket) run in the kernel's thread, in a worker thread and in a child process, in the
// same run. The three farms run at once, each in its own process (bench/isolation-server.ts) so
// the load generator does not share their loops, and are measured in alternating rounds (the
// order rotated each round); each figure is a server's best round, so a burst of load from
// elsewhere on the machine hurts one round of one server, not one server throughout.
// Standalone: `node dist/bench/isolation.js` (after `npm run build:all`) prints the section.
// BENCH_SECONDS (default 3) per REST measurement, BENCH_ROUNDS (default 3) rounds,
// BENCH_WS_ROUNDS (default 2000) sequential echoes, three times as many pipelined.
import autocannon from 'autocannon'
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { cpus, loadavg } from 'node:os'
import WebSocket from 'ws'
import { fmtRatio, ratio, table, type PartResult } from './report.js'

const SECONDS = Number(process.env.BENCH_ISOLATION_SECONDS ?? 3)
const ROUNDS = Number(process.env.BENCH_ISOLATION_ROUNDS ?? 3)
const WS_ROUNDS = Number(process.env.BENCH_WS_ROUNDS ?? 2000)
const SERVER = fileURLToPath(new URL('./isolation-server.js', import.meta.url))
const MODES = ['none', 'worker', 'process'] as const
type Mode = typeof MODES[number]

interface Served { name: Mode; child: ChildProcess; port: number }

function serve(mode: Mode): Promise<Served> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SERVER, mode], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      out += String(chunk)
      const match = /PORT (\d+)/.exec(out)
      if (match) resolve({ name: mode, child, port: Number(match[1]) })
    })
    child.once('exit', (code) => reject(new Error(`server (${mode}) exited with ${code}`)))
  })
}

async function stop(served: Served): Promise<void> {
  if (served.child.exitCode !== null) return
  const exited = new Promise((resolve) => served.child.once('exit', resolve))
  served.child.kill('SIGTERM')
  await exited
}

async function rest(port: number, seconds: number): Promise<{ rps: number; p50: number; errors: number }> {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/plugin/steady/hello`,
    connections: 10,
    duration: seconds,
    headers: { host: 'a.example' },
  })
  return { rps: result.requests.average, p50: result.latency.p50, errors: result.errors + result.non2xx }
}

/** Sequential echoes on one socket: round-trip latency; then a pipelined burst: throughput. */
async function ws(port: number, rounds: number): Promise<{ rttUs: number; msgsPerSec: number }> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/plugin/steady/`, {
    headers: { host: 'a.example', origin: 'http://a.example' },
  })
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
  try {
    const times: number[] = []
    for (let i = 0; i < rounds; i++) {
      const start = process.hrtime.bigint()
      await new Promise<void>((resolve) => { socket.once('message', () => resolve()); socket.send(`m${i}`) })
      times.push(Number(process.hrtime.bigint() - start) / 1000)
    }
    times.sort((a, b) => a - b)
    const burst = rounds * 3
    let received = 0
    const start = process.hrtime.bigint()
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`pipelined burst: ${received} of ${burst} echoes in 60 s`)), 60_000)
      socket.on('message', () => {
        if (++received === burst) {
          clearTimeout(timer)
          resolve()
        }
      })
      for (let i = 0; i < burst; i++) socket.send(`b${i}`)
    })
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    return { rttUs: times[Math.floor(times.length / 2)] ?? 0, msgsPerSec: burst / seconds }
  } finally {
    socket.close()
  }
}

interface Figures { rps: number; p50: number; errors: number; rttUs: number; msgsPerSec: number }

/** Each figure's best round: the most requests and echoes per second, the shortest round trip. */
function best(a: Figures | undefined, b: Figures): Figures {
  if (!a) return b
  return {
    rps: Math.max(a.rps, b.rps), p50: Math.min(a.p50, b.p50), errors: a.errors + b.errors,
    rttUs: Math.min(a.rttUs, b.rttUs), msgsPerSec: Math.max(a.msgsPerSec, b.msgsPerSec),
  }
}

export async function isolation(): Promise<PartResult> {
  const load = loadavg()[0] ?? 0
  const servers: Served[] = []
  const results = new Map<Mode, Figures>()
  try {
    for (const mode of MODES) servers.push(await serve(mode))
    // Warm-up: every farm's JIT and its plugin's, before anything counts.
    for (const served of servers) {
      await rest(served.port, 1)
      await ws(served.port, 200)
    }
    for (let round = 0; round < ROUNDS; round++) {
      const shift = round % servers.length
      const order = [...servers.slice(shift), ...servers.slice(0, shift)]
      if (round % 2 === 1) order.reverse()
      for (const served of order) {
        const r = await rest(served.port, SECONDS)
        const w = await ws(served.port, WS_ROUNDS)
        results.set(served.name, best(results.get(served.name), { ...r, ...w }))
      }
    }
  } finally {
    await Promise.all(servers.map(stop))
  }
  const base = results.get('none')
  const rows = MODES.map((mode) => {
    const f = results.get(mode)
    if (!f || !base) return [mode, '—', '—', '—', '—', '—', '—', '—', '—']
    return [
      mode, Math.round(f.rps), f.p50, fmtRatio(ratio(f.rps, base.rps)), Math.round(f.rttUs),
      fmtRatio(ratio(f.rttUs, base.rttUs)), Math.round(f.msgsPerSec), fmtRatio(ratio(f.msgsPerSec, base.msgsPerSec)),
      f.errors,
    ]
  })
  const markdown = [
    `Plugin isolation (${cpus().length} cores, ${cpus()[0]?.model ?? 'cpu'}, load average ${load.toFixed(1)} ` +
      `at the start). REST: autocannon, 10 connections, ${SECONDS} s; websocket: ${WS_ROUNDS} sequential echoes ` +
      `(round trip), then ${WS_ROUNDS * 3} sent at once (pipelined). The three farms run side by side and are ` +
      `measured in ${ROUNDS} alternating rounds; each figure is the best round, ratios against \`none\` ` +
      '(the plugin in the kernel\'s thread) from the same run. Goals (issue 17): REST ≥ 0.80 ×, pipelined ≥ 0.50 ×, ' +
      'round trip ≤ 2 × in-process.',
    '',
    'Before the channel was batched and windowed (2026-11-25, one request or frame per message, a round trip per ' +
      'websocket frame, Node IPC for `process`): REST worker 0.53, process 0.47 ×; pipelined worker 0.12, ' +
      'process 0.07 ×; round trip worker 1.6, process 2.3 ×.',
    '',
    table(
      ['isolation', 'REST req/s', 'p50 ms', 'vs none', 'WS RTT p50 µs', 'RTT × none', 'pipelined echoes/s',
        'vs none', 'errors'],
      rows,
    ),
  ].join('\n')
  const headline = (label: string, mode: Mode, pick: (f: Figures) => number, invert = false): {
    label: string; value: number | null
  } => {
    const f = results.get(mode)
    if (!f || !base) return { label, value: null }
    return { label, value: invert ? ratio(pick(base), pick(f)) : ratio(pick(f), pick(base)) }
  }
  return {
    markdown: `### Plugin isolation\n\n${markdown}`,
    headlines: [
      headline('worker plugin REST vs in-process', 'worker', (f) => f.rps),
      headline('process plugin REST vs in-process', 'process', (f) => f.rps),
      headline('worker plugin ws pipelined vs in-process', 'worker', (f) => f.msgsPerSec),
      headline('process plugin ws pipelined vs in-process', 'process', (f) => f.msgsPerSec),
    ],
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log((await isolation()).markdown)
}
