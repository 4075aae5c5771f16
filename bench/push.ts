// Push fan-out latency: one published event to 1,000 subscribers of one key, over real sockets
// on 127.0.0.1. The server runs in a child process; the subscribers run here. Each round
// publishes once (an HTTP POST; the server stamps the wall-clock time just before its publish
// or send loop) and waits for every subscriber; latency is each subscriber's receive time minus
// that stamp (both processes read the same clock). Rounds are sequential, so each is one burst
// of 1,000 frames. Used for wikifarm (GET /system/push and the bench-push plugin) and for raw
// `ws` (bench/raw-ws-server.ts).
import { request } from 'node:http'
import WebSocket from 'ws'
import { percentile } from './http-client.js'

const HOST = 'push.example'

export interface FanOutTarget {
  port: number
  /** The websocket path subscribers connect to. */
  wsPath: string
  /** The HTTP path that publishes {n}. */
  publishPath: string
}

export interface FanOutResult {
  all: { p50: number; p99: number; max: number; count: number }
  last: { p50: number; p99: number; max: number; count: number }
}

function post(port: number, path: string, body: unknown): Promise<string> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body)
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path,
        agent: false,
        headers: { host: HOST, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(Buffer.concat(chunks).toString())
            : reject(new Error(`${path}: ${res.statusCode}`)),
        )
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

interface Subscriber {
  ws: WebSocket
  onPublished: ((n: number, latency: number) => void) | null
}

function subscribe(target: FanOutTarget): Promise<Subscriber> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${target.port}${target.wsPath}`, ['wikifarm.v1'], {
      headers: { host: HOST, origin: `http://${HOST}` },
    })
    const sub: Subscriber = { ws, onPublished: null }
    ws.once('error', reject)
    ws.once('open', () => ws.send(JSON.stringify({ type: 'subscribe', id: 's', data: { key: 'bench' } })))
    ws.on('message', (data) => {
      const now = performance.timeOrigin + performance.now()
      const message = JSON.parse(data.toString()) as { type: string; data?: { value?: { n: number; at: number } } }
      if (message.type === 'subscribed') resolve(sub)
      else if (message.type === 'published' && message.data?.value)
        sub.onPublished?.(message.data.value.n, now - message.data.value.at)
      else reject(new Error(`unexpected ${data.toString().slice(0, 200)}`))
    })
  })
}

const summary = (values: number[]) => ({
  p50: Number(percentile(values, 0.5).toFixed(2)), p99: Number(percentile(values, 0.99).toFixed(2)),
  max: Number(percentile(values, 1).toFixed(2)), count: values.length,
})

export async function fanOutLatency(target: FanOutTarget, subscribers = 1000, rounds = 50): Promise<FanOutResult> {
  const subs: Subscriber[] = []
  const all: number[] = []
  const last: number[] = []
  try {
    for (let i = 0; i < subscribers; i += 50) {
      subs.push(...await Promise.all(Array.from({ length: Math.min(50, subscribers - i) }, () => subscribe(target))))
    }
    for (let n = -3; n < rounds; n++) { // three warm-up rounds, not counted
      const latencies: number[] = []
      const done = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`round ${n}: ${latencies.length} of ${subscribers} received`)),
          10_000,
        )
        for (const sub of subs) {
          sub.onPublished = (got, latency) => {
            if (got !== n) return
            latencies.push(latency)
            if (latencies.length === subscribers) { clearTimeout(timer); resolve() }
          }
        }
      })
      const answer = JSON.parse(await post(target.port, target.publishPath, { n })) as { reached: number }
      if (answer.reached !== subscribers) throw new Error(`round ${n} reached ${answer.reached}`)
      await done
      if (n >= 0) {
        all.push(...latencies)
        last.push(Math.max(...latencies))
      }
    }
  } finally {
    for (const sub of subs) sub.ws.terminate()
  }
  return { all: summary(all), last: summary(last) }
}
