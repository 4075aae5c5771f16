// Websocket conventions: subprotocol negotiation (wikifarm.v1 or a plain legacy client),
// and every bad input: malformed JSON (1007), schema-invalid envelopes (an error message,
// then 1008 after too many), oversize (1009) and binary (1003) frames, foreign origins and
// bad identity refused before the upgrade, unknown plugins and socket paths 404.
import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { listenLocal, startFarm } from './fixtures/test-farm.js'
import { openWs, refusedUpgrade, type WsClient } from './fixtures/ws-client.js'
import { probe, resetProbe } from './fixtures/plugin-probe.js'
import type { FarmConfig } from '../core/farm-config.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-sockets/', import.meta.url))
const HOST = 'a.example'

async function wireFarm(t: Test, overrides: Partial<FarmConfig> = {}) {
  resetProbe()
  const farm = await startFarm(t, { farm: true, ...overrides }, undefined, { builtinPluginsDir: PLUGINS })
  return { ...farm, port: await listenLocal(farm) }
}

type Hello = { type: 'hello'; data: { site: string; protocol: string | null } }

async function echoes(t: Test, client: WsClient, id: string): Promise<void> {
  client.send({ type: 'echo', id, data: { n: 1 } })
  t.same(await client.nextJson(), { type: 'echo', id, data: { n: 1 } }, `echo ${id} answered`)
}

t.test('a client offering wikifarm.v1 gets it; a plain client gets none and is served', async (t) => {
  const farm = await wireFarm(t)
  const v1 = await openWs(farm.port, '/plugin/wire/', HOST, { protocols: ['wikifarm.v1'] })
  t.equal(v1.ws.protocol, 'wikifarm.v1', 'negotiated on the wire')
  t.same(
    await v1.nextJson<Hello>(),
    { type: 'hello', data: { site: HOST, protocol: 'wikifarm.v1' } },
    'and told to the plugin',
  )
  await echoes(t, v1, 'v1')

  const among = await openWs(farm.port, '/plugin/wire/', HOST, { protocols: ['chat.v9', 'wikifarm.v1'] })
  t.equal(among.ws.protocol, 'wikifarm.v1', 'picked among others')

  const plain = await openWs(farm.port, '/plugin/wire/', HOST)
  t.equal(plain.ws.protocol, '', 'no subprotocol for a plain client')
  t.same(await plain.nextJson<Hello>(), { type: 'hello', data: { site: HOST, protocol: null } })
  await echoes(t, plain, 'plain')

  const legacy = await openWs(farm.port, '/plugin/wire', HOST)
  t.same(
    await legacy.nextJson<Hello>(),
    { type: 'hello', data: { site: HOST, protocol: null } },
    'the legacy path /plugin/<name> works',
  )
  await echoes(t, legacy, 'legacy')

  const text = await openWs(farm.port, '/plugin/wire/text', HOST, { protocols: ['wikifarm.v1'] })
  text.send('plain words')
  t.equal(await text.next(), 'text:plain words', 'a text route passes text as it is')
  for (const c of [v1, among, plain, legacy, text]) c.ws.close()
  await Promise.all([v1, among, plain, legacy, text].map((c) => c.waitClose()))
})

t.test('malformed JSON on a json route closes with 1007', async (t) => {
  const farm = await wireFarm(t)
  for (const frame of ['{"type": "echo"', 'not json at all', '{"type":"echo","__proto__":{"polluted":true}}']) {
    const client = await openWs(farm.port, '/plugin/wire/', HOST)
    await client.nextJson()
    client.send(frame)
    t.same(await client.waitClose(), { code: 1007, reason: 'frame is not valid JSON' }, frame)
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted')
})

t.test('a schema-invalid envelope gets an error message and the connection stays open', async (t) => {
  const farm = await wireFarm(t)
  const client = await openWs(farm.port, '/plugin/wire/', HOST)
  await client.nextJson()
  const cases: [unknown, string | undefined][] = [
    [[1, 2], undefined], ['a string', undefined], [42, undefined], [null, undefined], [{ id: 'no-type' }, 'no-type'],
    [{ type: 'unknown', id: 'u1' }, 'u1'], [{ type: 'echo', id: 'x', extra: true }, 'x'],
    [{ type: 'flood', id: 'f', data: { count: 'many', size: 1 } }, 'f'], [{ type: 'echo', id: 7 }, undefined],
  ]
  for (const [frame, id] of cases) {
    client.send(JSON.stringify(frame))
    const reply = await client.nextJson<{ type: string; id?: string; data: { code: string; error: string } }>()
    t.match(
      reply,
      { type: 'error', data: { code: 'WIKIFARM_ERR_BAD_MESSAGE', error: /^invalid message: / } },
      JSON.stringify(frame),
    )
    t.equal(reply.id, id, 'the error carries the message\'s id when it had one')
  }
  await echoes(t, client, 'after-errors')
  t.equal(client.ws.readyState, client.ws.OPEN)
  client.ws.close()
  await client.waitClose()
})

t.test('ten invalid frames in a row close with 1008; a valid one in between resets the count', async (t) => {
  const farm = await wireFarm(t)
  const client = await openWs(farm.port, '/plugin/wire/', HOST)
  await client.nextJson()
  for (let i = 0; i < 9; i++) client.send({ type: 'bad' })
  for (let i = 0; i < 9; i++) t.equal((await client.nextJson()).type, 'error')
  await echoes(t, client, 'reset')
  for (let i = 0; i < 9; i++) client.send({ type: 'bad' })
  for (let i = 0; i < 9; i++) t.equal((await client.nextJson()).type, 'error')
  t.equal(client.ws.readyState, client.ws.OPEN, 'nine in a row are tolerated')
  client.send({ type: 'bad' })
  t.same(await client.waitClose(), { code: 1008, reason: 'too many invalid messages' }, 'the tenth closes')
})

t.test('an oversize frame closes with 1009; a binary frame with 1003', async (t) => {
  const farm = await wireFarm(t, { maxPayload: 1024 })
  const big = await openWs(farm.port, '/plugin/wire/', HOST)
  await big.nextJson()
  big.send({ type: 'echo', id: 'fits', data: 'y'.repeat(900) })
  t.equal((await big.nextJson()).id, 'fits', 'a frame under the limit is served')
  big.send({ type: 'echo', id: 'big', data: 'y'.repeat(2000) })
  t.equal((await big.waitClose()).code, 1009)
  t.notOk(big.received.some((m) => m.includes('"big"')), 'the oversize frame never reached the plugin')

  const binary = await openWs(farm.port, '/plugin/wire/', HOST)
  await binary.nextJson()
  binary.send(Buffer.from(JSON.stringify({ type: 'echo', id: 'bin' })), { binary: true })
  t.same(await binary.waitClose(), { code: 1003, reason: 'binary frames are not accepted' })
  const text = await openWs(farm.port, '/plugin/wire/text', HOST)
  text.send(Buffer.from('bytes'), { binary: true })
  t.equal((await text.waitClose()).code, 1003, 'on text routes too')
})

t.test('a foreign Origin is refused with 403 before any plugin sees the connection', async (t) => {
  const farm = await wireFarm(t, { origins: ['https://trusted.example'] })
  for (const origin of [
    'https://evil.example',
    'http://b.example',
    'http://a.example.evil.example',
    'null',
    'http://a.example:8080',
  ]) {
    const refused = await refusedUpgrade(farm.port, '/plugin/wire/', HOST, { origin })
    t.equal(refused.status, 403, `Origin ${origin}`)
    t.match(JSON.parse(refused.body), { code: 'WIKIFARM_ERR_FOREIGN_ORIGIN' })
  }
  const crossSite = await refusedUpgrade(farm.port, '/plugin/wire/', HOST, {
    origin: null,
    headers: { 'sec-fetch-site': 'cross-site' },
  })
  t.equal(crossSite.status, 403, 'a cross-site fetch without Origin too')
  t.equal(probe.connects.wire, undefined, 'no connection reached the plugin')
  t.equal(farm.kernel.sockets.size, 0)

  for (const [label, options] of [
    ['its own origin', {}],
    ['https on its own host', { origin: `https://${HOST}` }],
    ['a configured extra origin', { origin: 'https://trusted.example' }],
    ['no Origin (not a browser)', { origin: null }],
  ] as const) {
    const client = await openWs(farm.port, '/plugin/wire/', HOST, options)
    t.equal((await client.nextJson()).type, 'hello', `${label} is served`)
    client.ws.close()
    await client.waitClose()
  }
})

t.test('bad identity parameters are a 400, over REST and before an upgrade', async (t) => {
  const farm = await wireFarm(t)
  for (const query of ['page=Bad_Slug', 'item=123', 'lineup=a,,b', 'page=a&page=b']) {
    const rest = await farm.app.inject({ url: `/plugin/wire/connections?${query}`, headers: { host: HOST } })
    t.equal(rest.statusCode, 400, `REST ?${query}`)
    t.equal(rest.json().code, 'WIKIFARM_ERR_VALIDATION')
    const upgrade = await refusedUpgrade(farm.port, `/plugin/wire/?${query}`, HOST)
    t.equal(upgrade.status, 400, `upgrade ?${query}`)
    t.match(JSON.parse(upgrade.body), { code: 'WIKIFARM_ERR_VALIDATION' })
  }
  const header = await refusedUpgrade(farm.port, '/plugin/wire/', HOST, { headers: { 'x-wiki-page': '../etc' } })
  t.equal(header.status, 400, 'an identity header too')
  t.equal(probe.connects.wire, undefined, 'no connection reached the plugin')
  const good = await openWs(farm.port, '/plugin/wire/?page=welcome-visitors&item=0123456789abcdef&lineup=a,b', HOST)
  t.equal((await good.nextJson()).type, 'hello', 'a well-formed identity is served')
  good.ws.close()
  await good.waitClose()
})

t.test('unknown plugins and unknown socket paths are 404 before any upgrade', async (t) => {
  const farm = await wireFarm(t)
  const restNoPlugin = await farm.app.inject({ url: '/plugin/nosuch/anything', headers: { host: HOST } })
  t.equal(restNoPlugin.statusCode, 404)
  t.equal(restNoPlugin.json().code, 'WIKIFARM_ERR_PLUGIN_NOT_ENABLED')
  for (const path of ['/plugin/nosuch/', '/plugin/nosuch', '/plugin/']) {
    const refused = await refusedUpgrade(farm.port, path, HOST)
    t.equal(refused.status, 404, `upgrade ${path}`)
  }
  const noSocket = await refusedUpgrade(farm.port, '/plugin/wire/nope', HOST)
  t.equal(noSocket.status, 404, 'a running plugin\'s unknown socket path')
  t.match(JSON.parse(noSocket.body), { code: 'WIKIFARM_ERR_PLUGIN_ROUTE_NOT_FOUND' })
  const restRoute = await farm.app.inject({ url: '/plugin/wire/nope', headers: { host: HOST } })
  t.equal(restRoute.statusCode, 404)
  t.equal(restRoute.json().code, 'WIKIFARM_ERR_PLUGIN_ROUTE_NOT_FOUND')
  const restOnSocket = await farm.app.inject({
    url: '/plugin/wire/connections',
    method: 'POST',
    headers: { host: HOST },
  })
  t.equal(restOnSocket.statusCode, 404, 'a method the route does not declare')
  t.equal(probe.connects.wire, undefined, 'no connection reached the plugin')

  const badHost = await refusedUpgrade(farm.port, '/plugin/wire/', 'bad..host')
  t.equal(badHost.status, 400, 'a malformed Host is refused before the upgrade')
})
