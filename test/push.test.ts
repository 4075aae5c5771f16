// The kernel's push over real sockets on 127.0.0.1: GET /system/push subscriptions bound to
// the connection's site, ctx.site.publish from a plugin, 1,000 subscribers on one key, the
// books freed on unsubscribe and disconnect, bad keys and floods refused with clear errors,
// and no publish crossing from one site to another.
import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { claim, listenLocal, putAction, startFarm } from './fixtures/test-farm.js'
import { eventually, openWs, refusedUpgrade, type WsClient } from './fixtures/ws-client.js'
import type { FarmConfig } from '../core/farm-config.js'
import { DEFAULT_MAX_SUBSCRIPTIONS } from '../core/sockets/push-hub.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-push/', import.meta.url))
const LINKMAP = fileURLToPath(new URL('../plugins/', import.meta.url))
const A = 'a.example'
const B = 'b.example'
const V1 = 'wikifarm.v1'
const ITEM = '00000000000000a1'

type Msg = { type: string; id?: string; data?: Record<string, unknown> }

async function pushFarm(
  t: Test,
  plugins: FarmConfig['plugins'] = { pusher: { sites: [A, B] } },
  overrides: Partial<FarmConfig> = {},
) {
  const farm = await startFarm(t, { farm: true, allowed: [A, B], plugins, ...overrides }, undefined, {
    builtinPluginsDir: PLUGINS,
  })
  t.equal(farm.kernel.plugins.get('pusher')?.state, 'running', 'pusher launched')
  const port = await listenLocal(farm)
  const clients: WsClient[] = []
  // Every client is closed when the test ends, before the farm is.
  t.teardown(() => {
    for (const c of clients) c.ws.terminate()
  })
  const open = async (host: string, protocols?: string) => {
    const client = await openWs(port, '/system/push', host, protocols === undefined ? {} : { protocols })
    clients.push(client)
    return client
  }
  const publish = async (host: string, key: string, value: unknown) => {
    const res = await farm.app.inject({
      method: 'POST',
      url: '/plugin/pusher/publish',
      headers: { host },
      payload: { key, value },
    })
    return {
      status: res.statusCode,
      body: res.json() as { site?: string; reached?: number; code?: string; error?: string },
    }
  }
  return { ...farm, port, clients, open, publish }
}

async function request(client: WsClient, message: string | object): Promise<Msg> {
  client.send(message)
  return client.nextJson<Msg>()
}

async function subscribe(t: Test, client: WsClient, key: string, id = `s-${key}`): Promise<void> {
  t.same(
    await request(client, { type: 'subscribe', id, data: { key } }),
    { type: 'subscribed', id, data: { key } },
    `subscribed to ${key}`,
  )
}

/** Nothing more arrives on these clients within a while. */
async function quiet(t: Test, clients: WsClient[], ms = 150): Promise<void> {
  const counts = clients.map((c) => c.received.length)
  await new Promise((resolve) => setTimeout(resolve, ms))
  t.same(clients.map((c) => c.received.length), counts, 'and nothing else arrives')
}

t.test('a subscriber gets what a plugin publishes to its key, with or without wikifarm.v1', async (t) => {
  const farm = await pushFarm(t)
  const v1 = await farm.open(A, V1)
  const plain = await farm.open(A)
  t.equal(v1.ws.protocol, V1, 'wikifarm.v1 negotiated when offered')
  t.equal(plain.ws.protocol, '', 'and none for a plain client')
  await subscribe(t, v1, 'alpha')
  await subscribe(t, v1, `alpha/${ITEM}`)
  await subscribe(t, plain, 'alpha')
  t.same(
    await request(plain, { type: 'subscribe', data: { key: 'beta' } }),
    { type: 'subscribed', data: { key: 'beta' } },
    'no id, none echoed',
  )
  t.same(
    await request(v1, { type: 'subscribe', id: 'again', data: { key: 'alpha' } }),
    { type: 'subscribed', id: 'again', data: { key: 'alpha' } },
    'subscribing twice is harmless',
  )
  t.same(farm.kernel.push.counts(), { subscriptions: 4, keys: 3, sites: 1, connections: 2 })
  t.same(farm.kernel.sockets.counts(), { kernel: { [A]: 2 } }, 'push connections are counted in the socket hub')

  const value = { links: ['beta', 'gamma'], n: 1 }
  t.same(
    await farm.publish(A, 'alpha', value),
    { status: 200, body: { site: A, reached: 2 } },
    'publish resolves to the subscribers reached',
  )
  const expected = { type: 'published', data: { key: 'alpha', plugin: 'pusher', value } }
  t.same(await v1.nextJson(), expected)
  t.same(await plain.nextJson(), expected)

  t.same((await farm.publish(A, `alpha/${ITEM}`, 'item news')).body.reached, 1, 'an item key is its own key')
  t.same(await v1.nextJson(), {
    type: 'published',
    data: { key: `alpha/${ITEM}`, plugin: 'pusher', value: 'item news' },
  })
  t.same((await farm.publish(A, 'nobody', null)).body.reached, 0, 'a key nobody follows reaches nobody')
  await quiet(t, [v1, plain])

  // The plugin's publish is checked as a subscription is.
  for (const key of ['Alpha', 'b.example/alpha', `alpha/${ITEM.toUpperCase()}`, '', 'a/b/c']) {
    const res = await farm.publish(A, key, 1)
    t.equal(res.status, 400, `publish to ${JSON.stringify(key)} refused`)
    t.equal(res.body.code, 'WIKIFARM_ERR_VALIDATION')
  }
  t.match(
    (await farm.publish(A, 'big', 'x'.repeat(2 * 1024 * 1024))).body,
    { code: 'WIKIFARM_ERR_VALIDATION', error: /over \d+ bytes/ },
    'a message bigger than a frame is refused before anyone gets it',
  )
  await quiet(t, [v1, plain])
})

t.test('1,000 subscribers on one key all receive one publish', async (t) => {
  const farm = await pushFarm(t)
  const N = 1000
  const CONCURRENCY = 50
  const subscribers: WsClient[] = []
  for (let i = 0; i < N; i += CONCURRENCY) {
    const batch = await Promise.all(Array.from({ length: Math.min(CONCURRENCY, N - i) }, async (_, j) => {
      const client = await farm.open(A, (i + j) % 2 === 0 ? V1 : undefined)
      const answer = await request(client, { type: 'subscribe', id: String(i + j), data: { key: 'crowd' } })
      if (answer.type !== 'subscribed') throw new Error(`subscriber ${i + j}: ${JSON.stringify(answer)}`)
      return client
    }))
    subscribers.push(...batch)
  }
  t.equal(farm.kernel.push.subscribers(A, 'crowd'), N, 'all subscribed')
  t.same(farm.kernel.push.counts(), { subscriptions: N, keys: 1, sites: 1, connections: N })
  t.equal(farm.kernel.sockets.size, N)

  const res = await farm.publish(A, 'crowd', { hello: 'everyone' })
  t.same(res, { status: 200, body: { site: A, reached: N } }, 'the publish resolves to 1000')
  const got = await Promise.all(subscribers.map((c) => c.nextJson<Msg>(10_000)))
  t.ok(
    got.every(
      (m) =>
        m.type === 'published' && m.data?.key === 'crowd' && (m.data.value as { hello?: string }).hello === 'everyone',
    ),
    'every subscriber received it, once',
  )

  for (const c of subscribers) c.ws.close()
  await eventually(() => farm.kernel.sockets.size === 0, 10_000, 'every connection closed')
  t.same(
    farm.kernel.push.counts(),
    { subscriptions: 0, keys: 0, sites: 0, connections: 0 },
    'and every subscription freed',
  )
})

t.test('a subscriber that does not read is dropped at the send-buffer cap; the others keep receiving', async (t) => {
  const CAP = 256 * 1024
  const farm = await pushFarm(t, undefined, { sendBufferBytes: CAP })
  const reader = await farm.open(A, V1)
  const slow = await farm.open(A, V1)
  await subscribe(t, reader, 'flood')
  await subscribe(t, slow, 'flood')
  slow.ws.pause()
  const chunk = 'x'.repeat(16 * 1024)
  let published = 0
  let reached = 2
  while (reached === 2 && published < 4000) {
    reached = (await farm.publish(A, 'flood', chunk)).body.reached ?? -1
    published++
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(reached, 1, `after ${published} publishes the slow subscriber was dropped, the reader still reached`)
  t.equal((await farm.publish(A, 'flood', 'after')).body.reached, 1)
  await eventually(() => reader.received.length === 1 + published + 1, 10_000, 'the reader got every publish')
  slow.ws.resume()
  t.same(await slow.waitClose(5000), { code: 1013, reason: 'send buffer full: the client is not reading' })
  await eventually(() => farm.kernel.push.subscribers(A, 'flood') === 1, 2000, 'the dropped subscriber is freed')
})

t.test('unsubscribe and disconnect free everything', async (t) => {
  const farm = await pushFarm(t)
  const a1 = await farm.open(A, V1)
  const a2 = await farm.open(A)
  const b1 = await farm.open(B, V1)
  await subscribe(t, a1, 'alpha')
  await subscribe(t, a1, `alpha/${ITEM}`)
  await subscribe(t, a2, 'alpha')
  await subscribe(t, b1, 'alpha')
  t.same(farm.kernel.push.counts(), { subscriptions: 4, keys: 3, sites: 2, connections: 3 })

  t.same(await request(a1, { type: 'unsubscribe', id: 'u1', data: { key: 'alpha' } }), {
    type: 'unsubscribed',
    id: 'u1',
    data: { key: 'alpha' },
  })
  t.same(
    await request(a1, { type: 'unsubscribe', id: 'u2', data: { key: 'alpha' } }),
    { type: 'unsubscribed', id: 'u2', data: { key: 'alpha' } },
    'unsubscribing from a key not followed is harmless',
  )
  t.same(farm.kernel.push.counts(), { subscriptions: 3, keys: 3, sites: 2, connections: 3 })
  t.equal((await farm.publish(A, 'alpha', 'after')).body.reached, 1, 'only a2 still follows alpha on a')
  t.same(await a2.nextJson(), { type: 'published', data: { key: 'alpha', plugin: 'pusher', value: 'after' } })
  await quiet(t, [a1])

  t.same(await request(a1, { type: 'unsubscribe', data: { key: `alpha/${ITEM}` } }), {
    type: 'unsubscribed',
    data: { key: `alpha/${ITEM}` },
  })
  t.same(
    farm.kernel.push.counts(),
    { subscriptions: 2, keys: 2, sites: 2, connections: 2 },
    'a connection with no subscription leaves no entry',
  )

  a2.ws.close()
  b1.ws.terminate()
  await eventually(() => farm.kernel.push.counts().subscriptions === 0, 2000, 'disconnects freed their subscriptions')
  t.same(farm.kernel.push.counts(), { subscriptions: 0, keys: 0, sites: 0, connections: 0 })
  t.equal((await farm.publish(A, 'alpha', 'gone')).body.reached, 0)
  a1.ws.close()
  await eventually(() => farm.kernel.sockets.size === 0, 2000, 'all connections closed')
})

t.test('bad keys, malformed messages and floods get clear errors', async (t) => {
  const farm = await pushFarm(t)
  const client = await farm.open(A, V1)

  const badKeys: Array<[string, RegExp]> = [
    [`${B}/alpha`, /this connection's site only.*names a site/],
    [B, /names a site/],
    [`${A}/alpha`, /names a site/],
    ['Alpha', /invalid page slug/],
    ['al_pha', /invalid page slug/],
    ['', /invalid page slug/],
    ['a'.repeat(101), /invalid page slug/],
    ['alpha/123', /invalid item id/],
    [`alpha/${ITEM.toUpperCase()}`, /invalid item id/],
    [`alpha/${ITEM}/more`, /too many parts/],
    ['/alpha', /invalid page slug/],
  ]
  for (const [key, why] of badKeys) {
    const answer = await request(client, { type: 'subscribe', id: 'k', data: { key } })
    t.match(
      answer,
      { type: 'error', id: 'k', data: { code: 'WIKIFARM_ERR_BAD_KEY', error: why } },
      `key ${JSON.stringify(key.slice(0, 30))} refused`,
    )
  }
  t.match(
    await request(client, { type: 'unsubscribe', id: 'k', data: { key: 'No' } }),
    { type: 'error', data: { code: 'WIKIFARM_ERR_BAD_KEY' } },
    'unsubscribe checks its key too',
  )

  const malformed: object[] = [
    { type: 'subscribe', id: 'm' },
    { type: 'subscribe', id: 'm', data: {} },
    { type: 'subscribe', id: 'm', data: { key: 5 } },
    { type: 'subscribe', id: 'm', data: { key: 'x'.repeat(400) } },
    { type: 'publish', id: 'm', data: { key: 'alpha' } },
    { id: 'm', data: { key: 'alpha' } },
  ]
  for (const message of malformed) {
    t.match(
      await request(client, message),
      { type: 'error', data: { code: 'WIKIFARM_ERR_BAD_MESSAGE', error: /invalid message/ } },
      `malformed ${JSON.stringify(message).slice(0, 60)}`,
    )
  }
  t.same(farm.kernel.push.counts().subscriptions, 0, 'nothing was subscribed')

  // A flood: the cap holds, the connection stays usable.
  for (let i = 0; i < DEFAULT_MAX_SUBSCRIPTIONS; i++)
    client.send({ type: 'subscribe', id: String(i), data: { key: `page-${i}` } })
  for (let i = 0; i < DEFAULT_MAX_SUBSCRIPTIONS; i++) {
    const answer = await client.nextJson<Msg>()
    if (answer.type !== 'subscribed') t.fail(`subscription ${i}: ${JSON.stringify(answer)}`)
  }
  t.match(await request(client, { type: 'subscribe', id: 'over', data: { key: 'one-more' } }), {
    type: 'error',
    id: 'over',
    data: { code: 'WIKIFARM_ERR_TOO_MANY_SUBSCRIPTIONS', error: new RegExp(`at most ${DEFAULT_MAX_SUBSCRIPTIONS}`) },
  })
  t.same(
    await request(client, { type: 'subscribe', id: 'dup', data: { key: 'page-0' } }),
    { type: 'subscribed', id: 'dup', data: { key: 'page-0' } },
    'a key already followed is not a new subscription',
  )
  await request(client, { type: 'unsubscribe', data: { key: 'page-0' } })
  await subscribe(t, client, 'one-more')
  t.same(farm.kernel.push.counts(), {
    subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
    keys: DEFAULT_MAX_SUBSCRIPTIONS,
    sites: 1,
    connections: 1,
  })

  // Frames that are no envelope at all close the connection, as on every kernel socket.
  client.send('not json')
  t.equal((await client.waitClose()).code, 1007)
  await eventually(() => farm.kernel.push.counts().subscriptions === 0, 2000, 'its subscriptions freed')
})

t.test('the push route goes through the site, Origin and session checks', async (t) => {
  const farm = await pushFarm(t)
  t.equal((await refusedUpgrade(farm.port, '/system/push', 'nowhere.example', {})).status, 404, 'unknown site: 404')
  const foreign = await refusedUpgrade(farm.port, '/system/push', A, { origin: 'http://evil.example' })
  t.equal(foreign.status, 403, 'foreign Origin refused before the upgrade')
  t.match(JSON.parse(foreign.body), { code: 'WIKIFARM_ERR_FOREIGN_ORIGIN' })
  t.equal(
    (await refusedUpgrade(farm.port, '/system/push?page=Not_A_Slug', A)).status,
    400,
    'a malformed identity is a 400',
  )
  const plainGet = await farm.app.inject({ url: '/system/push', headers: { host: A } })
  t.equal(plainGet.statusCode, 400, 'a plain GET is told to upgrade')
})

t.test('a site plugin cannot publish to another site; same keys on another site hear nothing', async (t) => {
  const farm = await pushFarm(t, { pusher: { sites: [A] } })
  const a = await farm.open(A, V1)
  const b = await farm.open(B, V1)
  await subscribe(t, a, 'alpha')
  await subscribe(t, b, 'alpha')

  t.same(
    (await farm.publish(A, 'alpha', 'for a')).body,
    { site: A, reached: 1 },
    'the handle publishes on its own site',
  )
  t.same(await a.nextJson(), { type: 'published', data: { key: 'alpha', plugin: 'pusher', value: 'for a' } })
  const toB = await farm.app.inject({
    method: 'POST',
    url: '/plugin/pusher/publish-to',
    headers: { host: A },
    payload: { site: B, key: 'alpha', value: 'sneaky' },
  })
  t.equal(toB.statusCode, 404)
  t.match(
    toB.json(),
    { code: 'WIKIFARM_ERR_PLUGIN_NOT_ENABLED' },
    'no handle on a site outside the grant, so no publish there',
  )
  const onB = await farm.app.inject({
    method: 'POST',
    url: '/plugin/pusher/publish',
    headers: { host: B },
    payload: { key: 'alpha', value: 'x' },
  })
  t.equal(onB.statusCode, 404, 'nor through a request on that site')
  await quiet(t, [a, b])
  t.same(b.received.length, 1, 'b heard only its own subscription answer')
})

t.test('Linkmap publishes its updates to the page key', async (t) => {
  const farm = await startFarm(t, { farm: true, plugins: { txtzyme: { enabled: false } } }, undefined, {
    builtinPluginsDir: LINKMAP,
  })
  const port = await listenLocal(farm)
  const owner = await claim(t, farm.app, A)
  const ownerB = await claim(t, farm.app, B)
  const a = await openWs(port, '/system/push', A, { protocols: V1 })
  const b = await openWs(port, '/system/push', B, { protocols: V1 })
  t.teardown(() => { a.ws.terminate(); b.ws.terminate() })
  await subscribe(t, a, 'alpha')
  await subscribe(t, b, 'alpha')
  t.equal(
    (await putAction(farm.app, A, owner.cookie, 'alpha', { type: 'create', item: { title: 'Alpha' }, date: 1 }))
      .statusCode,
    200,
  )
  t.same(await a.nextJson(), {
    type: 'published',
    data: { key: 'alpha', plugin: 'linkmap', value: { slug: 'alpha', links: [] } },
  })
  t.equal((await putAction(farm.app, A, owner.cookie, 'alpha',
    { type: 'add', id: ITEM, item: { type: 'paragraph', id: ITEM, text: 'See [[Beta]].' } })).statusCode, 200)
  t.same(await a.nextJson(), {
    type: 'published',
    data: { key: 'alpha', plugin: 'linkmap', value: { slug: 'alpha', links: ['beta'] } },
  })
  t.equal(
    (await putAction(farm.app, B, ownerB.cookie, 'other', { type: 'create', item: { title: 'Other' }, date: 1 }))
      .statusCode,
    200,
  )
  await quiet(t, [a, b])
  t.equal(b.received.length, 1, 'b\'s subscriber of alpha heard nothing from a')
})

t.test('shutdown closes push connections with 1001 and frees their subscriptions', async (t) => {
  const farm = await pushFarm(t)
  const a = await farm.open(A, V1)
  const b = await farm.open(B)
  await subscribe(t, a, 'alpha')
  await subscribe(t, b, 'alpha')
  await farm.kernel.close()
  t.same(
    await Promise.all([a.waitClose(), b.waitClose()]),
    [1, 2].map(() => ({ code: 1001, reason: 'server shutting down' })),
  )
  t.equal(farm.kernel.sockets.size, 0)
  t.same(farm.kernel.push.counts(), { subscriptions: 0, keys: 0, sites: 0, connections: 0 })
})
