// Websockets: 10,000 idle connections spread over 1,000 sites (resident memory per connection)
// and the fan-out latency of one published event to 1,000 subscribers, wikifarm beside raw `ws`
// in the same run. Both servers run in child processes; the clients run here.
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { scratchDir } from './cleanup.js'
import { rssBytes, stopChild } from './children.js'
import { serve, stop } from './load.js'
import { startWikifarm } from './wikifarm-process.js'
import { fanOutLatency, type FanOutResult } from './push.js'
import { siteHosts } from './farm-data.js'
import { fmtBytes, fmtRatio, ratio, table, type PartResult } from './report.js'

const here = fileURLToPath(new URL('./', import.meta.url))
const CONNECTIONS = Number(process.env.BENCH_WS_CONNECTIONS ?? 10_000)
const SITES = 1000

interface Idle {
  rss0: number
  rss1: number
  opened: number
  seconds: number
}

async function settle(ms = 1000): Promise<void> {
  await new Promise((r) => setTimeout(r, ms))
}

/** Opens `count` idle sockets, 250 at a time, the Host rotating over `hosts`. */
async function openIdle(port: number, path: string, hosts: string[], count: number): Promise<WebSocket[]> {
  const sockets: WebSocket[] = []
  for (let i = 0; i < count; i += 250) {
    sockets.push(
      ...(await Promise.all(
        Array.from(
          { length: Math.min(250, count - i) },
          (_, j) =>
            new Promise<WebSocket>((resolve, reject) => {
              const host = hosts[(i + j) % hosts.length] as string
              const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, ['wikifarm.v1'], {
                headers: { host, origin: `http://${host}` },
                perMessageDeflate: false,
              })
              ws.once('open', () => resolve(ws))
              ws.once('error', reject)
            }),
        ),
      )),
    )
  }
  return sockets
}

async function idle(port: number, pid: number, path: string, hosts: string[]): Promise<Idle> {
  await settle()
  const rss0 = rssBytes(pid)
  const t0 = performance.now()
  const sockets = await openIdle(port, path, hosts, CONNECTIONS)
  const seconds = (performance.now() - t0) / 1000
  await settle(2000)
  const rss1 = rssBytes(pid)
  const open = sockets.filter((s) => s.readyState === WebSocket.OPEN).length
  for (const s of sockets) s.terminate()
  return { rss0, rss1, opened: open, seconds }
}

/** Idle memory and fan-out for one server, measured in one process life. */
async function measureRaw(): Promise<{ idle: Idle; fan: FanOutResult }> {
  const raw = await serve(join(here, 'raw-ws-server.js'))
  try {
    const i = await idle(raw.port, raw.child.pid as number, '/', siteHosts(SITES))
    const fan = await fanOutLatency({ port: raw.port, wsPath: '/', publishPath: '/publish' })
    return { idle: i, fan }
  } finally {
    await stop(raw)
  }
}

async function measureOurs(): Promise<{ idle: Idle; fan: FanOutResult }> {
  const dir = scratchDir('websockets')
  // bench-push (POST /plugin/bench-push/publish) is loaded by package path, beside the built-ins.
  const farm = await startWikifarm({
    data: join(dir, 'data'),
    logFile: join(dir, 'farm.log'),
    env: {
      WIKIFARM_PLUGINS: JSON.stringify({
        'bench-push': { package: fileURLToPath(new URL('./plugins-push/bench-push/index.js', import.meta.url)) },
      }),
    },
  })
  try {
    const i = await idle(farm.port, farm.child.pid as number, '/system/push', siteHosts(SITES))
    const fan = await fanOutLatency({
      port: farm.port,
      wsPath: '/system/push',
      publishPath: '/plugin/bench-push/publish',
    })
    return { idle: i, fan }
  } finally {
    await stopChild(farm)
  }
}

/** Resident bytes each open connection added to the server. */
function perConn(x: Idle): number {
  return (x.rss1 - x.rss0) / Math.max(1, x.opened)
}

export async function websockets(): Promise<PartResult> {
  const raw = await measureRaw()
  const ours = await measureOurs()
  return {
    markdown: [
      `### Websockets: ${CONNECTIONS} idle connections over ${SITES} sites; fan-out to 1,000 subscribers`,
      '',
      'Idle: RSS of the server process before and two seconds after opening the connections (250 at a time; ' +
        'wikifarm: ' +
        "`GET /system/push` with subprotocol `wikifarm.v1` and the site's Origin, each connection keeping its site " +
          "open; " +
        'raw `ws`: a bare `WebSocketServer` on an http server).',
      '',
      table(
        [
          'server',
          'connections open',
          'opened in s',
          'RSS before',
          'RSS with connections',
          'per connection',
          'ratio (raw ÷ ours)',
        ],
        [
          [
            'raw ws',
            raw.idle.opened,
            raw.idle.seconds.toFixed(1),
            fmtBytes(raw.idle.rss0),
            fmtBytes(raw.idle.rss1),
            fmtBytes(perConn(raw.idle)),
            '1.00',
          ],
          [
            'wikifarm',
            ours.idle.opened,
            ours.idle.seconds.toFixed(1),
            fmtBytes(ours.idle.rss0),
            fmtBytes(ours.idle.rss1),
            fmtBytes(perConn(ours.idle)),
            fmtRatio(ratio(perConn(raw.idle), perConn(ours.idle))),
          ],
        ],
      ),
      '',
      'Fan-out: 1,000 subscribers of one key on one site, 50 rounds of one publish each (after 3 warm-up rounds). ' +
        'Latency is a ' +
        "subscriber's receive time minus the server's clock just before it publishes (wikifarm: `ctx.site.publish` " +
          "in the " +
        "bench-push plugin; raw `ws`: a loop of `send`). The subscribers share the bench's one event loop, which " +
          "reads the " +
        '1,000 sockets in turn, so the last delivery of a round also measures the reader.',
      '',
      table(
        [
          'server',
          'every delivery p50 ms',
          'p99 ms',
          'last of 1,000 p50 ms',
          'p99 ms',
          'ratio p50 (raw ÷ ours)',
          'ratio p99',
        ],
        [
          ['raw ws', raw.fan.all.p50, raw.fan.all.p99, raw.fan.last.p50, raw.fan.last.p99, '1.00', '1.00'],
          [
            'wikifarm',
            ours.fan.all.p50,
            ours.fan.all.p99,
            ours.fan.last.p50,
            ours.fan.last.p99,
            fmtRatio(ratio(raw.fan.all.p50, ours.fan.all.p50)),
            fmtRatio(ratio(raw.fan.all.p99, ours.fan.all.p99)),
          ],
        ],
      ),
    ].join('\n'),
    headlines: [
      { label: 'RSS per idle websocket: raw ws ÷ wikifarm', value: ratio(perConn(raw.idle), perConn(ours.idle)) },
      { label: 'fan-out to 1,000, p99: raw ws ÷ wikifarm', value: ratio(raw.fan.all.p99, ours.fan.all.p99) },
    ],
  }
}
