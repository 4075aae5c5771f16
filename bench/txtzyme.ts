// The Txtzyme part of `npm run bench`: lines per second and latency per line through the kernel
// (json websocket /plugin/txtzyme/v1 → queue → pty → simulator and back) for 1 and 50 clients,
// against writing the same lines, with the same sentinel, to a pty directly in the same run, in
// alternating rounds. Each simulator runs in a child process at the far end of a socat pty pair,
// in real time. Run alone: npm run bench -- txtzyme (BENCH_SECONDS, default 10, per side).
import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { AddressInfo } from 'node:net'
import { SerialPort, ReadlineParser } from 'serialport'
import WebSocket from 'ws'
import { createKernel } from '../core/kernel.js'
import { DEFAULTS } from '../core/farm-config.js'
import { RATE_LIMITS_OFF } from '../core/http/rate-limits.js'
import { openPtyPair, waitExit } from '../plugins/txtzyme/pty.js'
import { defaultNonce } from '../plugins/txtzyme/queue.js'
import { scratchDir, trackChild } from './cleanup.js'
import { ratio, type Headline, type PartResult } from './report.js'

const here = fileURLToPath(new URL('./', import.meta.url))
const CLI = join(here, '..', 'plugins', 'txtzyme', 'simulator-cli.js')

interface Phase {
  lines: number
  seconds: number
  p50: number
  p99: number
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

async function direct(path: string, clients: number, seconds: number): Promise<Phase> {
  const port = new SerialPort({ path, baudRate: 9600, autoOpen: false })
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())))
  let waiting: { nonce: string; done: () => void } | null = null
  port.pipe(new ReadlineParser({ delimiter: '\n' })).on('data', (line: string) => {
    if (waiting && line.replace(/\r$/, '').endsWith(waiting.nonce)) {
      const w = waiting
      waiting = null
      w.done()
    }
  })
  // The least any sharing needs: one line on the wire at a time, in arrival order.
  let chain = Promise.resolve()
  const runLine = (line: string): Promise<void> => {
    const mine = chain.then(() => new Promise<void>((resolve) => {
      const nonce = defaultNonce()
      waiting = { nonce, done: resolve }
      port.write(`${line}_${nonce}_\n`)
    }))
    chain = mine
    return mine
  }
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

/** A simulator at the far end of its own socat pty pair. */
async function simulatedDevice(dir: string, name: string): Promise<{ devicePath: string; close: () => Promise<void> }> {
  const pair = await openPtyPair(join(dir, `tty${name}`), join(dir, `sim${name}`))
  trackChild(pair.socat)
  const sim = spawn(process.execPath, [CLI, '--tty', pair.simulatorPath], { stdio: ['ignore', 'pipe', 'inherit'] })
  trackChild(sim)
  await new Promise<void>((resolve) => sim.stdout?.once('data', () => resolve()))
  sim.stdout?.resume()
  return {
    devicePath: pair.devicePath,
    close: async () => {
      sim.kill('SIGTERM')
      await waitExit(sim)
      await pair.close()
    },
  }
}

/**
 * Direct writes and the kernel each get their own pty and simulator (a device has one
 * owner), so the two can be measured in alternating rounds, keeping each one's best: a burst
 * of load from elsewhere on the machine then hurts one round, not one side.
 */
export async function txtzyme(
  seconds = Number(process.env.BENCH_SECONDS ?? 10),
  rounds = Number(process.env.BENCH_ROUNDS ?? 5),
): Promise<PartResult> {
  const dir = scratchDir('txtzyme')
  const rows: string[] = []
  const headlines: Headline[] = []
  const perRound = Math.max(1, Math.round(seconds / rounds))
  const devices: { devicePath: string; close: () => Promise<void> }[] = []
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
    try {
      await kernel.app.listen({ host: '127.0.0.1', port: 0 })
      const { port } = kernel.app.server.address() as AddressInfo
      const rate = (p: Phase) => p.lines / p.seconds
      for (const clients of [1, 50]) {
        const sides = [
          ['direct', () => direct(forDirect.devicePath, clients, perRound)],
          ['kernel', () => throughKernel(port, clients, perRound)],
        ] as const
        await direct(forDirect.devicePath, clients, 1) // warm-up
        await throughKernel(port, clients, 1)
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
      const rate = (p: Phase) => p.lines / p.seconds
      rows.push(`| ${clients} | direct to the pty | ${Math.round(rate(d))} | ${d.p50} | ${d.p99} | | |`)
      rows.push(
        `| ${clients} | through the kernel | ${Math.round(rate(k))} | ${k.p50} | ${k.p99} | ` +
          `${(k.p50 - d.p50).toFixed(2)} / ${(k.p99 - d.p99).toFixed(2)} | ${(rate(k) / rate(d)).toFixed(2)} |`,
      )
      headlines.push({
        label: `txtzyme lines/s, ${clients} client${clients > 1 ? 's' : ''}: kernel ÷ direct pty`,
        value: ratio(rate(k), rate(d)),
      })
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
      'Each side has its own simulator on its own socat pty pair (a device has one owner). Direct: the lines ' +
        'written to ' +
        'the pty with the same sentinel, one at a time in arrival order (the least any sharing needs). Kernel: the ' +
          'json ' +
        'websocket `/plugin/txtzyme/v1` → queue → pty and back, the kernel in the bench process.',
      '',
      '| clients | path | lines/s | p50 ms | p99 ms | added p50 / p99 ms | ratio |',
      '|---|---|---|---|---|---|---|',
      ...rows,
    ].join('\n'),
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log((await txtzyme()).markdown)
}
