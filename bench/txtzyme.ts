// The Txtzyme part of `npm run bench`: lines per second and latency per line through the kernel
// (json websocket /plugin/txtzyme/v1 → queue → pty → simulator and back) for 1 and 50 clients,
// against writing the same lines, with the same sentinel, to a pty directly in the same run, in
// alternating rounds: one line in flight (the baseline of issue 17), and pipelined within the
// same window as the plugin's. Each simulator runs in a child process at the far end of a socat
// pty pair, in real time, and reports its busy time. Run alone: npm run bench -- txtzyme
// (BENCH_SECONDS, default 10, per side).
import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SerialPort, ReadlineParser } from 'serialport'
import WebSocket from 'ws'
import { createKernel } from '../core/kernel.js'
import { DEFAULTS } from '../core/farm-config.js'
import { RATE_LIMITS_OFF } from '../core/http/rate-limits.js'
import { openPtyPair, waitExit } from '../plugins/txtzyme/pty.js'
import { WINDOW_BYTES, WINDOW_LINES, defaultNonce } from '../plugins/txtzyme/queue.js'
import { scratchDir, trackChild } from './cleanup.js'
import { ratio, type Headline, type PartResult } from './report.js'

const here = fileURLToPath(new URL('./', import.meta.url))
const CLI = join(here, '..', 'plugins', 'txtzyme', 'simulator-cli.js')

interface Phase {
  lines: number
  seconds: number
  p50: number
  p99: number
  /** Share of the round's wall time the simulated device spent running lines. */
  deviceBusy?: number
  /** Share of wall time with at least one line on the wire (the plugin's /status busyMs). */
  occupied?: number
}

function summarise(latencies: number[], ms: number): Phase {
  const sorted = [...latencies].sort((a, b) => a - b)
  const at = (q: number) => Number((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(2))
  return { lines: sorted.length, seconds: ms / 1000, p50: at(0.5), p99: at(0.99) }
}

/** `clients` closed loops for `seconds`: each sends a line, waits for its output, sends the next. */
async function loops(
  clients: number,
  seconds: number,
  send: (client: number, i: number) => Promise<void>,
): Promise<Phase> {
  const latencies: number[] = []
  const until = Date.now() + seconds * 1000
  const started = Date.now()
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; Date.now() < until; i++) {
        const t0 = performance.now()
        await send(c, i)
        latencies.push(performance.now() - t0)
      }
    }),
  )
  return summarise(latencies, Date.now() - started)
}

/**
 * Lines written straight to the pty with the same sentinel, in arrival order: one at a time (the
 * least any sharing needs), or pipelined within the plugin's window (WINDOW_BYTES beyond the
 * running line, WINDOW_LINES on the wire), the most a bare FIFO can do on this path.
 */
async function direct(path: string, clients: number, seconds: number, pipelined = false): Promise<Phase> {
  const port = new SerialPort({ path, baudRate: 9600, autoOpen: false })
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())))
  const waiting: { line: string; done: () => void }[] = []
  const flight: { nonce: string; wire: number; done: () => void }[] = []
  let ahead = 0
  const pump = (): void => {
    let text = ''
    while (waiting.length > 0 && flight.length < (pipelined ? WINDOW_LINES : 1)) {
      const next = waiting[0] as (typeof waiting)[number]
      const nonce = defaultNonce()
      const wire = next.line.length + nonce.length + 3
      if (flight.length > 0 && ahead + wire > WINDOW_BYTES) break
      waiting.shift()
      if (flight.length > 0) ahead += wire
      flight.push({ nonce, wire, done: next.done })
      text += `${next.line}_${nonce}_\n`
    }
    if (text) port.write(text)
  }
  port.pipe(new ReadlineParser({ delimiter: '\n' })).on('data', (line: string) => {
    const head = flight[0]
    if (head && line.replace(/\r$/, '').endsWith(head.nonce)) {
      flight.shift()
      if (flight[0]) ahead -= flight[0].wire
      head.done()
      pump()
    }
  })
  const runLine = (line: string): Promise<void> => new Promise<void>((resolve) => {
    waiting.push({ line, done: resolve })
    pump()
  })
  try {
    return await loops(clients, seconds, (c, i) => runLine(`_c${c}-${i}_`))
  } finally {
    await new Promise<void>((resolve) => port.close(() => resolve()))
  }
}

async function throughKernel(port: number, clients: number, seconds: number): Promise<Phase> {
  const sockets = await Promise.all(Array.from({ length: clients }, async (_, c) => {
    const host = `s${c % 5}.example`
    const ws = new WebSocket(`ws://127.0.0.1:${port}/plugin/txtzyme/v1`, ['wikifarm.v1'], {
      headers: { host, origin: `http://${host}` },
    })
    const waiting = new Map<string, () => void>()
    ws.on('message', (data) => {
      const message = JSON.parse(String(data)) as { type: string; id?: string }
      if (message.id !== undefined) {
        waiting.get(message.id)?.()
        waiting.delete(message.id)
      }
    })
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    return { ws, waiting }
  }))
  try {
    return await loops(clients, seconds, (c, i) => new Promise<void>((resolve) => {
      const socket = sockets[c] as (typeof sockets)[number]
      socket.waiting.set(String(i), resolve)
      socket.ws.send(JSON.stringify({ type: 'run', id: String(i), data: `_c${c}-${i}_` }))
    }))
  } finally {
    for (const { ws } of sockets) ws.close()
  }
}

interface SimStats {
  linesRun: number
  busyMs: number
  inputDropped: number
  outputDropped: number
}

interface Device {
  devicePath: string
  stats: () => Promise<SimStats>
  close: () => Promise<void>
}

/** Runs a phase and adds the simulator's busy share of its wall time. */
async function measured(device: Device, run: () => Promise<Phase>): Promise<Phase> {
  const before = await device.stats()
  const phase = await run()
  const after = await device.stats()
  if (after.inputDropped > before.inputDropped) throw new Error('the simulator lost input: the window is too large')
  return { ...phase, deviceBusy: (after.busyMs - before.busyMs) / (phase.seconds * 1000) }
}

/** A simulator at the far end of its own socat pty pair. */
async function simulatedDevice(dir: string, name: string): Promise<Device> {
  const pair = await openPtyPair(join(dir, `tty${name}`), join(dir, `sim${name}`))
  trackChild(pair.socat)
  const sim = spawn(process.execPath, [CLI, '--tty', pair.simulatorPath], { stdio: ['ignore', 'pipe', 'inherit'] })
  trackChild(sim)
  await new Promise<void>((resolve) => sim.stdout?.once('data', () => resolve()))
  // After the banner, stdout carries only the JSON lines SIGUSR2 asks for (simulator-cli.ts).
  let asked: ((stats: SimStats) => void) | null = null
  let partial = ''
  sim.stdout?.on('data', (chunk: Buffer) => {
    partial += chunk.toString()
    let at: number
    while ((at = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, at)
      partial = partial.slice(at + 1)
      if (line.startsWith('{')) asked?.(JSON.parse(line) as SimStats)
    }
  })
  return {
    devicePath: pair.devicePath,
    stats: () => new Promise<SimStats>((resolve) => {
      asked = resolve
      sim.kill('SIGUSR2')
    }),
    close: async () => {
      sim.kill('SIGTERM')
      await waitExit(sim)
      await pair.close()
    },
  }
}

/** The figures before pipelining, for the comparison the doc shows (issue 17). */
const BEFORE =
  'Before pipelining (one line on the wire at a time), 50 clients through the kernel ÷ direct one line in ' +
  'flight: 0.99 (2026-11-25, quiet machine); 0.54 (main at 94aab25 on 2026-12-01, this bench\'s older ' +
  'version, machine loaded by other work).'

/** The plugin's /status busyMs: milliseconds with at least one line on the wire. */
function pluginBusyMs(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/plugin/txtzyme/status', headers: { host: 's0.example' } },
      (res) => {
        let body = ''
        res.on('data', (chunk: Buffer) => { body += chunk.toString() })
        res.on('end', () => resolve((JSON.parse(body) as { busyMs: number }).busyMs))
      },
    )
    req.on('error', reject)
    req.end()
  })
}

const pct = (share: number | undefined): string => (share === undefined ? '' : `${Math.round(share * 100)} %`)

/**
 * Direct writes and the kernel each get their own pty and simulator (a device has one owner), so
 * the sides can be measured in alternating rounds, keeping each one's best: a burst of load from
 * elsewhere on the machine then hurts one round, not one side.
 */
export async function txtzyme(
  seconds = Number(process.env.BENCH_SECONDS ?? 10),
  rounds = Number(process.env.BENCH_ROUNDS ?? 5),
): Promise<PartResult> {
  const dir = scratchDir('txtzyme')
  const rows: string[] = []
  const headlines: Headline[] = []
  const perRound = Math.max(1, Math.round(seconds / rounds))
  const devices: Device[] = []
  try {
    const forDirect = await simulatedDevice(dir, 'DIRECT')
    devices.push(forDirect)
    const forKernel = await simulatedDevice(dir, 'KERNEL')
    devices.push(forKernel)
    const kernel = await createKernel(
      {
        ...DEFAULTS,
        ...RATE_LIMITS_OFF,
        farm: true,
        data: join(dir, 'data'),
        cookieSecret: 'b'.repeat(32),
        cookieSecretIsRandom: false,
        plugins: { txtzyme: { options: { device: forKernel.devicePath, openToVisitors: true } } },
      },
      { logger: false },
    )
    const results: Record<string, Phase> = {}
    const rate = (p: Phase) => p.lines / p.seconds
    try {
      await kernel.app.listen({ host: '127.0.0.1', port: 0 })
      const { port } = kernel.app.server.address() as AddressInfo
      const viaKernel = async (clients: number, secs: number): Promise<Phase> => {
        const before = await pluginBusyMs(port)
        const phase = await measured(forKernel, () => throughKernel(port, clients, secs))
        return { ...phase, occupied: ((await pluginBusyMs(port)) - before) / (phase.seconds * 1000) }
      }
      for (const clients of [1, 50]) {
        const sides: [string, () => Promise<Phase>][] = [
          ['direct', () => measured(forDirect, () => direct(forDirect.devicePath, clients, perRound))],
          ['kernel', () => viaKernel(clients, perRound)],
        ]
        if (clients > 1) {
          const pipelined = () => direct(forDirect.devicePath, clients, perRound, true)
          sides.push(['pipelined', () => measured(forDirect, pipelined)])
        }
        for (const [, run] of sides) await run() // warm-up
        for (let round = 0; round < rounds; round++) {
          for (const [side, run] of round % 2 === 0 ? sides : [...sides].reverse()) {
            const phase = await run()
            const key = `${side} ${clients}`
            const best = results[key]
            if (!best || rate(phase) > rate(best)) results[key] = phase
          }
        }
      }
    } finally {
      await kernel.close()
    }
    for (const clients of [1, 50]) {
      const d = results[`direct ${clients}`] as Phase
      const k = results[`kernel ${clients}`] as Phase
      const pl = results[`pipelined ${clients}`]
      const row = (path: string, p: Phase, versus: string) =>
        `| ${clients} | ${path} | ${Math.round(rate(p))} | ${p.p50} | ${p.p99} | ${pct(p.deviceBusy)} | ` +
          `${pct(p.occupied)} | ${versus} |`
      rows.push(row('direct to the pty, one line in flight', d, '1.00'))
      if (pl) rows.push(row('direct to the pty, pipelined', pl, (rate(pl) / rate(d)).toFixed(2)))
      rows.push(row('through the kernel (pipelined)', k, (rate(k) / rate(d)).toFixed(2)))
      headlines.push({
        label: `txtzyme lines/s, ${clients} client${clients > 1 ? 's' : ''}: kernel ÷ direct pty`,
        value: ratio(rate(k), rate(d)),
      })
      if (pl) {
        headlines.push({
          label: `txtzyme lines/s, ${clients} clients: kernel ÷ direct pty pipelined`,
          value: ratio(rate(k), rate(pl)),
        })
      }
    }
  } finally {
    for (const device of devices) await device.close()
    rmSync(dir, { recursive: true, force: true })
  }
  return {
    headlines,
    markdown: [
      `### Txtzyme: one line \`_cN-i_\` per request, closed loops, best of ${rounds} alternating rounds of ` +
        `${perRound} s`,
      '',
      'Each side has its own simulator on its own socat pty pair (a device has one owner). Direct, one line in ' +
        'flight: the lines written to the pty with the same sentinel, one at a time in arrival order (the ' +
        'baseline: the least any sharing needs). Direct, pipelined: the same, sent ahead within the plugin\'s ' +
        `window (${WINDOW_BYTES} bytes beyond the running line, ${WINDOW_LINES} lines). Kernel: the json ` +
        'websocket `/plugin/txtzyme/v1` → queue (pipelined, default window) → pty and back, the kernel in the ' +
        'bench process. Device busy: the simulator\'s time running lines ÷ wall time; on the wire: the ' +
        'plugin\'s `busyMs` (at least one line sent and not answered) ÷ wall time. The simulator asserts it ' +
        'lost no input.',
      '',
      BEFORE,
      '',
      '| clients | path | lines/s | p50 ms | p99 ms | device busy | on the wire | ratio to one in flight |',
      '|---|---|---|---|---|---|---|---|',
      ...rows,
    ].join('\n'),
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log((await txtzyme()).markdown)
}
