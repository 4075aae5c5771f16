// Fuzzed websocket frames on every socket route (push, linkmap, txtzyme: json and plain, with
// and without wikifarm.v1): text, binary, envelopes with wrong types, poisoned and deeply
// nested JSON, oversize frames. Every connection either stays open and keeps answering or is
// closed with a documented code (never 1006 or 1011); afterwards no connection is left
// counted, the farm serves, and the pages and the other site are as they were.
import t from 'tap'
import fc from 'fast-check'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { claim, listenLocal, putAction, snapshot, startFarm, testData } from './fixtures/test-farm.js'
import { eventually, openWs, type WsClient } from './fixtures/ws-client.js'
import { checkInvariants, dataIn, fuzz, RUNS } from './fixtures/fuzz.js'
import { needSocat } from './fixtures/txtzyme-device.js'
import { openPtyPair, serveSimulator } from '../plugins/txtzyme/pty.js'

const HOST = 'a.example'
const OTHER = 'b.example'
const MAX_PAYLOAD = 64 * 1024
/** Close codes docs/protocol.md lists for what a client sends (1000: a plugin's own close). */
const DOCUMENTED = new Set([1000, 1003, 1007, 1008, 1009, 1013])

interface Route { path: string; protocols: string[] }
const ROUTES: Route[] = [
  { path: '/system/push', protocols: ['wikifarm.v1'] },
  { path: '/system/push', protocols: [] },
  { path: '/plugin/linkmap/', protocols: ['wikifarm.v1'] },
  { path: '/plugin/linkmap', protocols: [] },
  { path: '/plugin/linkmap/v1', protocols: ['wikifarm.v1'] },
  { path: '/plugin/txtzyme/', protocols: [] },
  { path: '/plugin/txtzyme/', protocols: ['wikifarm.v1'] },
  { path: '/plugin/txtzyme/v1', protocols: [] },
]

const key = fc.oneof(
  fc.constantFrom('alpha', 'alpha/0000000000000001', 'b.example/alpha', '', '/', '..', '__proto__'),
  fc.string({ maxLength: 40 }),
)
/** Lines Txtzyme might run: its own alphabet, so many are valid. */
const line = fc.oneof(
  fc.array(fc.constantFrom(...'0123456789pabcdefiomukhsv{}_ xq!'.split('')), { maxLength: 30 }).map((c) => c.join('')),
  fc.string({ maxLength: 40 }),
)
const anyJson = fc.jsonValue({ maxDepth: 3 })

const envelope = fc.record(
  {
    type: fc.oneof(
      {
        weight: 4,
        arbitrary: fc.constantFrom('subscribe', 'unsubscribe', 'run', 'observe', 'status', 'map', 'error', '__proto__'),
      },
      { weight: 1, arbitrary: anyJson },
    ),
    id: fc.oneof(fc.string({ maxLength: 20 }), fc.constant('x'.repeat(201)), anyJson),
    data: fc.oneof(
      fc.record({ key }),
      line,
      fc.record({ line, timeoutMs: fc.oneof(fc.integer({ min: -5, max: 50 }), anyJson) }),
      fc.boolean(),
      anyJson,
    ),
  },
  { requiredKeys: [] },
)

type Frame = { kind: 'text'; text: string } | { kind: 'binary'; bytes: Buffer }
const text = (s: string): Frame => ({ kind: 'text', text: s })

const frame: fc.Arbitrary<Frame> = fc.oneof(
  { weight: 20, arbitrary: envelope.map((e) => text(JSON.stringify(e))) },
  { weight: 2, arbitrary: line.map(text) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }).map(text) },
  { weight: 3, arbitrary: anyJson.map((v) => text(JSON.stringify(v))) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        '{"type":"subscribe","__proto__":{"polluted":true},"data":{"key":"alpha"}}',
        '{"type":"run","constructor":{"prototype":{"polluted":true}},"id":"p","data":"p"}',
        `{"type":"map","data":${'['.repeat(5000)}${']'.repeat(5000)}}`,
        `{"type":"subscribe","data":${'{"a":'.repeat(3000)}1${'}'.repeat(3000)}}`,
        '{"type":"subscribe"',
        '',
        '\u0000',
        'null',
        '[]',
        '"str"',
        '1e999',
      )
      .map(text),
  },
  {
    weight: 1,
    arbitrary: fc.uint8Array({ maxLength: 40 }).map((b) => ({ kind: 'binary' as const, bytes: Buffer.from(b) })),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: MAX_PAYLOAD - 16, max: MAX_PAYLOAD + 1024 })
      .map((n) => text(`{"type":"run","id":"big","data":"${'p'.repeat(n)}"}`)),
  },
)

t.test(`${RUNS} fuzzed websocket frames on every socket route`, async (t) => {
  if (!(await needSocat(t))) return
  // The simulator so fast that any line's delays vanish: the device is never the bottleneck.
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-ws-'))
  const pair = await openPtyPair(join(dir, 'device'), join(dir, 'sim'))
  const sim = await serveSimulator(pair.simulatorPath, { speed: 1e9 })
  t.teardown(async () => { await sim.close(); await pair.close(); rmSync(dir, { recursive: true, force: true }) })

  const parent = testData(t, { data: {} })
  const data = dataIn(parent)
  const farm = await startFarm(
    t,
    {
      farm: true,
      allowed: [HOST, OTHER],
      maxPayload: MAX_PAYLOAD,
      // Small outputs and queues: frames are what is fuzzed here (output volume has its own
      // suite, txtzyme-faults), and full queues keep error lines flowing to the client while it
      // sends bad frames: that is how the lost 1009 close frame was found (core/websocket-errors.ts).
      plugins: {
        txtzyme: { options: { device: pair.devicePath, timeoutMs: 2000, maxOutputBytes: 4096, perSessionCap: 10 } },
      },
    },
    data,
  )
  t.equal(
    farm.kernel.plugins.statuses().find((s) => s.name === 'txtzyme')?.state,
    'running',
    'txtzyme runs on the simulator',
  )
  const owner = await claim(t, farm.app, HOST)
  const other = await claim(t, farm.app, OTHER)
  t.equal(
    (await putAction(farm.app, OTHER, other.cookie, 'kept', { type: 'create', item: { title: 'Kept' }, date: 1 }))
      .statusCode,
    200,
  )
  t.equal(
    (await putAction(farm.app, HOST, owner.cookie, 'alpha', { type: 'create', item: { title: 'Alpha' }, date: 1 }))
      .statusCode,
    200,
  )
  await farm.kernel.sites.open(OTHER).flush()
  await farm.kernel.sites.open(HOST).flush()
  const before = await snapshot(join(data, OTHER))
  const beforeA = await snapshot(join(data, HOST))
  const port = await listenLocal(farm)

  const open = (route: Route) => openWs(port, route.path, HOST, { cookie: owner.cookie, protocols: route.protocols })
  const pool = new Map<number, WsClient>()
  const closes = new Map<number, number>()
  // The last frames sent on each connection, for the failure message.
  const sentOn = new WeakMap<WsClient, Frame[]>()
  let opened = 0
  const settle = async (client: WsClient): Promise<void> => {
    const closed = await client.waitClose(5000)
    closes.set(closed.code, (closes.get(closed.code) ?? 0) + 1)
    if (!DOCUMENTED.has(closed.code)) {
      const sent = (sentOn.get(client) ?? [])
        .slice(-4)
        .map((f) => (f.kind === 'binary' ? `<binary ${f.bytes.length}>` : f.text.slice(0, 120)))
      throw new Error(
        `closed with ${closed.code} ${closed.reason} after ${client.received.length} messages; last frames sent: ` +
          `${JSON.stringify(sent)}; last received: ` +
          JSON.stringify(client.received.slice(-3).map((m) => m.slice(0, 120))),
      )
    }
  }
  // A control connection, answered in order: when it answers, the frames before are handled.
  const control = await open(ROUTES[0] as Route)
  let round = 0
  const roundTrip = async () => {
    const id = `control-${round++}`
    control.send({ type: 'subscribe', id, data: { key: 'alpha' } })
    for (;;) {
      const message = await control.nextJson(10_000)
      if (message.id === id) return
    }
  }

  await fuzz(
    t,
    'websocket frames',
    fc.tuple(fc.nat(ROUTES.length - 1), fc.array(frame, { minLength: 1, maxLength: 4 })),
    async ([r, frames]) => {
      let client = pool.get(r)
      if (client && client.ws.readyState !== client.ws.OPEN) {
        pool.delete(r)
        await settle(client)
        client = undefined
      }
      if (!client) {
        client = await open(ROUTES[r] as Route)
        opened++
        pool.set(r, client)
      }
      for (const f of frames) {
        if (client.ws.readyState !== client.ws.OPEN) break
        const log = sentOn.get(client) ?? []
        log.push(f)
        if (log.length > 8) log.shift()
        sentOn.set(client, log)
        if (f.kind === 'binary') client.send(f.bytes, { binary: true })
        else client.send(f.text)
      }
      if (round * 50 < opened || Math.random() < 0.02) await roundTrip()
    },
  )
  await roundTrip()
  t.comment(`${opened} connections; closes by code: ${JSON.stringify(Object.fromEntries(closes))}`)

  // Every connection still open still answers.
  for (const [r, client] of pool) {
    if (client.ws.readyState !== client.ws.OPEN) { await settle(client); continue }
    const route = ROUTES[r] as Route
    if (route.path.startsWith('/system/push')) {
      client.send({ type: 'subscribe', id: 'final', data: { key: 'alpha' } })
      await eventually(() => client.received.some((m) => m.includes('"final"')), 5000, `${route.path} answers`)
    }
    client.ws.close()
    await client.waitClose(5000)
  }
  control.ws.close()
  await control.waitClose()
  await eventually(() => farm.kernel.sockets.size === 0, 5000, 'every connection is let go')
  t.equal(farm.kernel.sockets.size, 0, 'no connection is left counted')
  const again = await openWs(port, '/plugin/txtzyme/v1', HOST, { cookie: owner.cookie })
  await again.nextJson()
  again.send({ type: 'run', id: 'check', data: '_still in step_' })
  for (;;) {
    const m = await again.nextJson<{ type: string; id?: string; data?: { lines?: string[] } }>(5000)
    if (m.id !== 'check') continue
    t.same(m.data?.lines, ['still in step'], 'the device is still in step')
    break
  }
  again.ws.close()
  await again.waitClose()
  t.equal(
    (await farm.app.inject({ url: '/welcome-visitors.json', headers: { host: HOST } })).statusCode,
    200,
    'the farm serves',
  )
  await farm.kernel.close()
  await checkInvariants(t, {
    parent,
    data,
    farm: true,
    allowedSites: (n) => n === HOST || n === OTHER,
    untouched: { [OTHER]: before, [HOST]: beforeA },
  })
})
