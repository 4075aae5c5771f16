// Plugin isolation's cost: REST and websocket round-trip latency and throughput for one small
// plugin (test/fixtures/plugins-isolation/steady: GET /hello, a text echo socket) run in the
// kernel's thread, in a worker thread and in a child process, measured in the same run.
// Standalone: `node dist/bench/isolation.js` (after `npm run build:all`) prints a markdown table. The farm runs in
// a child process (bench/isolation-server.ts) so the load generator does not share its loop.
// BENCH_SECONDS (default 5) per REST measurement; BENCH_WS_ROUNDS (default 3000) echoes.
import autocannon from 'autocannon'
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { cpus } from 'node:os'
import WebSocket from 'ws'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const WS_ROUNDS = Number(process.env.BENCH_WS_ROUNDS ?? 3000)
const SERVER = fileURLToPath(new URL('./isolation-server.js', import.meta.url))
const MODES = ['none', 'worker', 'process'] as const

interface Served { child: ChildProcess; port: number }

function serve(mode: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SERVER, mode], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      out += String(chunk)
      const match = /PORT (\d+)/.exec(out)
      if (match) resolve({ child, port: Number(match[1]) })
    })
    child.once('exit', (code) => reject(new Error(`server (${mode}) exited with ${code}`)))
  })
}

async function rest(
  port: number,
  connections: number,
): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/plugin/steady/hello`,
    connections,
    duration: SECONDS,
    headers: { host: 'a.example' },
  })
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx,
  }
}

/** Sequential echoes on one socket: round-trip latency; then a pipelined burst: throughput. */
async function ws(port: number): Promise<{ rttUs: number; p99Us: number; msgsPerSec: number }> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/plugin/steady/`, {
    headers: { host: 'a.example', origin: 'http://a.example' },
  })
  await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
  const times: number[] = []
  for (let i = 0; i < WS_ROUNDS; i++) {
    const start = process.hrtime.bigint()
    await new Promise<void>((resolve) => { socket.once('message', () => resolve()); socket.send(`m${i}`) })
    times.push(Number(process.hrtime.bigint() - start) / 1000)
  }
  times.sort((a, b) => a - b)
  const burst = WS_ROUNDS * 3
  let received = 0
  const start = process.hrtime.bigint()
  await new Promise<void>((resolve) => {
    socket.on('message', () => { if (++received === burst) resolve() })
    for (let i = 0; i < burst; i++) socket.send(`b${i}`)
  })
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  socket.close()
  return {
    rttUs: times[Math.floor(times.length / 2)] ?? 0,
    p99Us: times[Math.floor(times.length * 0.99)] ?? 0,
    msgsPerSec: burst / seconds,
  }
}

export async function isolation(): Promise<string> {
  const rows: string[] = []
  let base: { rps: number; rtt: number; ws: number } | null = null
  for (const mode of MODES) {
    const served = await serve(mode)
    try {
      await rest(served.port, 10)                                   // warm-up
      const r = await rest(served.port, 10)
      const w = await ws(served.port)
      base ??= { rps: r.rps, rtt: w.rttUs, ws: w.msgsPerSec }
      const cells = [mode, Math.round(r.rps), r.p50, r.p99, (r.rps / base.rps).toFixed(2), Math.round(w.rttUs),
        Math.round(w.p99Us), Math.round(w.msgsPerSec), (w.msgsPerSec / base.ws).toFixed(2), r.errors]
      rows.push(`| ${cells.join(' | ')} |`)
    } finally {
      served.child.kill('SIGTERM')
      await new Promise((resolve) => served.child.once('exit', resolve))
    }
  }
  return [
    `Plugin isolation (${cpus().length} cores, ${cpus()[0]?.model ?? 'cpu'}; REST: autocannon, 10 connections, ` +
      `${SECONDS} s; websocket: ${WS_ROUNDS} sequential echoes, then ${WS_ROUNDS * 3} pipelined)`,
    '',
    '| isolation | REST req/s | p50 ms | p99 ms | vs none | WS RTT p50 µs | WS RTT p99 µs | WS echoes/s | vs none | ' +
      'errors |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n')
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(await isolation())
}
