// The push part of `npm run bench`: fan-out latency of one publish to 1,000 subscribers of one
// key, over real sockets on 127.0.0.1. The farm runs in a child process (bench/push-server.ts);
// the subscribers run here. Each round publishes once (POST /plugin/bench-push/publish, which
// stamps the wall-clock time just before ctx.site.publish) and waits for every subscriber;
// latency is each subscriber's receive time minus that stamp (both processes read the same
// clock). Rounds are sequential, so each is one burst of 1,000 frames.
import { mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { serve, stop } from './load.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const HOST = 'push.example'

function percentile(sorted: number[], p: number): number {
  return Number((sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number : 0).toFixed(2))
}

function post(port: number, path: string, body: unknown): Promise<string> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body)
    const req = request({ host: '127.0.0.1', port, method: 'POST', path, agent: false,
      headers: { host: HOST, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString()) : reject(new Error(`${path}: ${res.statusCode}`))))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

interface Subscriber {
  ws: WebSocket
  /** Round number ─▶ latency of that round's message, ms. */
  onPublished: ((n: number, latency: number) => void) | null
}

function subscribe(port: number): Promise<Subscriber> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/system/push`, ['wikifarm.v1'], { headers: { host: HOST, origin: `http://${HOST}` } })
    const sub: Subscriber = { ws, onPublished: null }
    ws.once('error', reject)
    ws.once('open', () => ws.send(JSON.stringify({ type: 'subscribe', id: 's', data: { key: 'bench' } })))
    ws.on('message', (data) => {
      const now = performance.timeOrigin + performance.now()
      const message = JSON.parse(data.toString()) as { type: string; data?: { value?: { n: number; at: number } } }
      if (message.type === 'subscribed') resolve(sub)
      else if (message.type === 'published' && message.data?.value) sub.onPublished?.(message.data.value.n, now - message.data.value.at)
      else reject(new Error(`unexpected ${data.toString().slice(0, 200)}`))
    })
  })
}

export async function push(subscribers = 1000, rounds = 50): Promise<string> {
  const data = mkdtempSync(join(tmpdir(), 'wikifarm-bench-'))
  const served = await serve(join(here, 'push-server.ts'), { BENCH_DATA: data })
  const subs: Subscriber[] = []
  const all: number[] = []
  const last: number[] = []
  try {
    for (let i = 0; i < subscribers; i += 50) {
      subs.push(...await Promise.all(Array.from({ length: Math.min(50, subscribers - i) }, () => subscribe(served.port))))
    }
    for (let n = -3; n < rounds; n++) { // three warm-up rounds, not counted
      const latencies: number[] = []
      const done = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`round ${n}: ${latencies.length} of ${subscribers} received`)), 10_000)
        for (const sub of subs) {
          sub.onPublished = (got, latency) => {
            if (got !== n) return
            latencies.push(latency)
            if (latencies.length === subscribers) { clearTimeout(timer); resolve() }
          }
        }
      })
      const answer = JSON.parse(await post(served.port, '/plugin/bench-push/publish', { n })) as { reached: number }
      if (answer.reached !== subscribers) throw new Error(`round ${n} reached ${answer.reached}`)
      await done
      if (n >= 0) {
        all.push(...latencies)
        last.push(Math.max(...latencies))
      }
    }
  } finally {
    for (const sub of subs) sub.ws.terminate()
    await stop(served)
    rmSync(data, { recursive: true, force: true })
  }
  all.sort((a, b) => a - b)
  last.sort((a, b) => a - b)
  return [
    `### Push fan-out: one publish to ${subscribers} subscribers of one key (GET /system/push), ${rounds} rounds`,
    '',
    'Latency is a subscriber\'s receive time minus the time just before `ctx.site.publish`; the farm runs in a child',
    'process, the subscribers in the bench process (whose single event loop reads all 1,000 sockets in turn).',
    '',
    '| measure | p50 ms | p99 ms | max ms |',
    '|---|---|---|---|',
    `| every delivery (${all.length}) | ${percentile(all, 0.5)} | ${percentile(all, 0.99)} | ${percentile(all, 1)} |`,
    `| the last of ${subscribers} in each round (${last.length}) | ${percentile(last, 0.5)} | ${percentile(last, 0.99)} | ${percentile(last, 1)} |`,
  ].join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(await push())
