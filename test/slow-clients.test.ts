// Clients that stop reading while the server publishes: the farm's memory stays bounded by the
// send-buffer cap per connection, every slow client is dropped with 1013 (the documented
// policy), and the clients that read get every message, in order, meanwhile.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { listenLocal, startFarm } from './fixtures/test-farm.js'
import { eventually, openWs, type WsClient } from './fixtures/ws-client.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-push/', import.meta.url))
const HOST = 'a.example'
const CAP = 256 * 1024
const SLOW = 20
const READERS = 5
const CHUNK = 32 * 1024

t.test(
  `${SLOW} clients stop reading during a flood of publishes: bounded memory, dropped with 1013, readers unaffected`,
  async (t) => {
    const farm = await startFarm(
      t,
      { farm: true, allowed: [HOST], sendBufferBytes: CAP, plugins: { pusher: { sites: [HOST] } } },
      undefined,
      { builtinPluginsDir: PLUGINS },
    )
    const port = await listenLocal(farm)
    const open = async () => {
      const c = await openWs(port, '/system/push', HOST, { protocols: 'wikifarm.v1' })
      c.send({ type: 'subscribe', id: 's', data: { key: 'flood' } })
      await c.nextJson()
      return c
    }
    const readers: WsClient[] = []
    const slow: WsClient[] = []
    for (let i = 0; i < READERS; i++) readers.push(await open())
    // The readers keep only the number of each publish: the test's own memory stays out of the count.
    const seen = readers.map((r) => {
      const numbers: number[] = []
      r.ws.on('message', (data) => {
        numbers.push(
          Number(
            String(data)
              .slice(0, 200)
              .match(/"value":"(\d+) /)?.[1],
          ),
        )
        r.received.length = 0
      })
      return numbers
    })
    for (let i = 0; i < SLOW; i++) slow.push(await open())
    t.teardown(() => {
      for (const c of [...readers, ...slow]) c.ws.terminate()
    })
    for (const c of slow) c.ws.pause()

    const publish = async (n: number) => {
      const res = await farm.app.inject({
        method: 'POST',
        url: '/plugin/pusher/publish',
        headers: { host: HOST },
        payload: { key: 'flood', value: `${n} ${'x'.repeat(CHUNK)}` },
      })
      return (res.json() as { reached: number }).reached
    }
    const rssBefore = process.memoryUsage().rss
    let maxBuffered = 0
    let published = 0
    // Publish until every slow client is dropped, and then some more.
    while (published < 3000) {
      const reached = await publish(published++)
      const buffered = farm.kernel.sockets.connections().reduce((sum, conn) => sum + conn.bufferedAmount, 0)
      maxBuffered = Math.max(maxBuffered, buffered)
      if (reached === READERS && published >= 400) break
      await new Promise((resolve) => setImmediate(resolve))
    }
    const rssGrowth = process.memoryUsage().rss - rssBefore
    t.ok(published < 3000, `every slow client was dropped after ${published} publishes of ${CHUNK / 1024} KiB`)
    t.ok(
      maxBuffered <= (SLOW + READERS) * CAP,
      `the farm never held more than the caps: at most ${Math.round(maxBuffered / 1024)} KiB queued (caps: ` +
        `${((SLOW + READERS) * CAP) / 1024} KiB)`,
    )
    t.ok(
      rssGrowth < 48 * 1024 * 1024,
      `the process grew by ${Math.round(rssGrowth / 1024 / 1024)} MiB while ${(published * CHUNK) / 1024 / 1024} ` +
        `MiB were published to ${SLOW + READERS} clients`,
    )

    for (const c of slow) c.ws.resume()
    const closes = await Promise.all(slow.map((c) => c.waitClose(10_000)))
    t.same(
      new Set(closes.map((c) => `${c.code} ${c.reason}`)),
      new Set(['1013 send buffer full: the client is not reading']),
      'each slow client was closed with 1013',
    )
    // Readers: every publish, in order.
    await eventually(
      () => seen.every((numbers) => numbers.length === published),
      20_000,
      'the readers got every publish',
    )
    for (const numbers of seen) {
      if (!numbers.every((n, i) => n === i)) t.fail('a reader got the publishes out of order or with gaps')
    }
    t.pass(`${READERS} readers got all ${published} publishes, in order`)
    await eventually(
      () => farm.kernel.push.subscribers(HOST, 'flood') === READERS && farm.kernel.sockets.size === READERS,
      5000,
      'the dropped subscribers are freed',
    )
    t.pass('the dropped subscribers and their connections are freed')
  },
)
