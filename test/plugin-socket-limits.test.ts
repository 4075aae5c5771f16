// Limits that keep one client from costing the farm: a client that stops reading is closed
// with 1013 once its send buffer passes the cap, while other clients keep receiving; a peer
// that stops answering pings is terminated.
import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { listenLocal, startFarm } from './fixtures/test-farm.js'
import { eventually, openWs } from './fixtures/ws-client.js'
import { probe, resetProbe } from './fixtures/plugin-probe.js'
import type { FarmConfig } from '../core/farm-config.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-sockets/', import.meta.url))
const HOST = 'a.example'
const CAP = 256 * 1024
const CHUNK = 16 * 1024

async function wireFarm(t: Test, overrides: Partial<FarmConfig>) {
  resetProbe()
  const farm = await startFarm(t, { farm: true, ...overrides }, undefined, { builtinPluginsDir: PLUGINS })
  return { ...farm, port: await listenLocal(farm) }
}

t.test('a slow reader is closed with 1013 at the send-buffer cap; a reading client keeps receiving', async (t) => {
  const farm = await wireFarm(t, { sendBufferBytes: CAP })
  const reader = await openWs(farm.port, '/plugin/wire/', HOST)
  await reader.nextJson()
  reader.send({ type: 'flood', id: 'r', data: { count: 300, size: CHUNK } })
  const types = new Set<string>()
  for (let i = 0; i < 300; i++) types.add((await reader.nextJson()).type)
  t.same([...types], ['chunk'], 'every frame arrives')
  t.same(
    await reader.nextJson(),
    { type: 'flood.done', data: { sent: 300 } },
    `a reading client takes ${(300 * CHUNK) / 1024 / 1024} MiB through a ${CAP / 1024} KiB cap`,
  )

  t.same(probe.log, ['flood:300:open'])
  probe.log = []

  const slow = await openWs(farm.port, '/plugin/wire/', HOST)
  await slow.nextJson()
  slow.ws.pause()
  const max = 4000
  slow.send({ type: 'flood', id: 's', data: { count: max, size: CHUNK } })
  // Meanwhile the other client is served.
  let echoes = 0
  let wrong = 0
  while (!probe.log.some((l) => l.startsWith('flood:')) && echoes < 5000) {
    reader.send({ type: 'echo', id: `e${echoes}` })
    if ((await reader.nextJson()).id !== `e${echoes}`) wrong++
    echoes++
  }
  t.equal(wrong, 0, 'every echo answered in order')
  const floodLine = probe.log.find((l) => l.startsWith('flood:')) ?? ''
  const sent = Number(floodLine.split(':')[1])
  t.match(floodLine, /^flood:\d+:closed$/, 'the flood stopped because the connection was closed')
  t.ok(sent < max, `after ${sent} of ${max} frames: the server did not buffer the whole flood`)
  t.ok(echoes > 0, `the reading client was served ${echoes} times meanwhile`)

  slow.ws.resume()
  t.same(await slow.waitClose(5000), { code: 1013, reason: 'send buffer full: the client is not reading' })
  t.ok(slow.received.length <= sent + 1, 'the slow client got at most what was queued before the cap')
  await eventually(() => probe.log.includes('closed:1013'), 2000, 'the plugin hears the close')

  reader.send({ type: 'echo', id: 'after' })
  t.same(await reader.nextJson(), { type: 'echo', id: 'after' }, 'the reading client is still served')
  t.equal(farm.kernel.sockets.size, 1)
  reader.ws.close()
  await reader.waitClose()
})

t.test('a peer that does not answer pings is terminated; one that does stays', async (t) => {
  const farm = await wireFarm(t, { pingIntervalSeconds: 0.05 })
  const deaf = await openWs(farm.port, '/plugin/wire/', HOST, { autoPong: false })
  const alive = await openWs(farm.port, '/plugin/wire/', HOST)
  await Promise.all([deaf.nextJson(), alive.nextJson()])
  const pings: number[] = []
  deaf.ws.on('ping', () => pings.push(Date.now()))
  const closed = await deaf.waitClose(2000)
  t.equal(closed.code, 1006, 'terminated, without a close handshake')
  t.ok(pings.length >= 1, `after ${pings.length} unanswered ping(s)`)
  await eventually(() => probe.log.includes('closed:1006'), 2000, 'the plugin hears the close')

  await new Promise((resolve) => setTimeout(resolve, 250))
  t.equal(alive.ws.readyState, alive.ws.OPEN, 'a peer answering pings outlives several intervals')
  alive.send({ type: 'echo', id: 'still' })
  t.same(await alive.nextJson(), { type: 'echo', id: 'still' })
  t.equal(farm.kernel.sockets.size, 1)
  alive.ws.close()
  await alive.waitClose()
})
