// Rate limits on logins, claims, edits and websocket upgrades, and caps on open websockets per
// client address and per site: past each, 429 with {error, code} and Retry-After, before any
// route or plugin runs; other addresses and reads are unaffected; 0 turns a limit off.
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { RateLimiter } from '../core/http/rate-limits.js'
import { claim, listenLocal, putAction, startFarm, FORM, actionForm, NO_LIMITS } from './fixtures/test-farm.js'
import { eventually, openWs, refusedUpgrade, type WsClient } from './fixtures/ws-client.js'

const HOST = 'a.example'

function check429(
  t: Test,
  response: { statusCode: number; headers: Record<string, unknown>; json(): unknown },
  code: string,
  what: string,
): void {
  t.equal(response.statusCode, 429, `${what}: 429`)
  t.match(response.json(), { error: String, code }, `${what}: the kernel's coded error`)
  t.match(String(response.headers['retry-after']), /^[1-9]\d*$/, `${what}: Retry-After in whole seconds`)
}

t.test(
  'the token bucket: a burst of the whole allowance, refilled evenly, Retry-After to the next token',
  async (t) => {
    let now = 0
    const limiter = new RateLimiter(6, () => now)
    for (let i = 0; i < 6; i++) t.equal(limiter.take('ip'), 0, `request ${i + 1} of the burst`)
    t.equal(limiter.take('ip'), 10, 'the 7th waits 10 s: one token every 60/6 s')
    t.equal(limiter.take('other'), 0, 'another address has its own bucket')
    now = 4_000
    t.equal(limiter.take('ip'), 6, 'later, less to wait')
    now = 10_000
    t.equal(limiter.take('ip'), 0, 'a token came back')
    t.equal(limiter.take('ip'), 10)
    now = 10 * 60_000
    for (let i = 0; i < 6; i++) t.equal(limiter.take('ip'), 0, 'refilled to the allowance, not beyond')
    t.equal(limiter.take('ip'), 10)
    t.equal(limiter.tracked, 2)
  },
)

t.test('logins: past loginRate a minute per address, 429; the right secret too; other addresses go on', async (t) => {
  const farm = await startFarm(t, { farm: true, loginRate: 3 })
  const owner = await claim(t, farm.app, HOST)
  const login = (secret: string, remoteAddress = '10.0.0.1') =>
    farm.app.inject({
      method: 'POST',
      url: '/auth/reclaim/',
      headers: { host: HOST, 'content-type': 'text/plain' },
      payload: secret,
      remoteAddress,
    })
  for (let i = 0; i < 3; i++) t.equal((await login('wrong')).statusCode, 401, `guess ${i + 1} is answered`)
  check429(t, await login('wrong'), 'WIKIFARM_ERR_RATE_LIMITED', 'the 4th guess')
  check429(
    t,
    await login(owner.secret),
    'WIKIFARM_ERR_RATE_LIMITED',
    'even with the right secret: guessing cannot be told from logging in',
  )
  t.equal((await login(owner.secret, '10.0.0.2')).statusCode, 200, 'another address logs in')
  t.equal(
    (await farm.app.inject({ url: '/welcome-visitors.json', headers: { host: HOST }, remoteAddress: '10.0.0.1' }))
      .statusCode,
    200,
    'reads are not limited',
  )
  t.match((await login('wrong')).json(), { error: /more than 3 login attempts a minute from 10\.0\.0\.1/ })
})

t.test('claims: past claimRate a minute per address, 429, and no site folder is made', async (t) => {
  const farm = await startFarm(t, { farm: true, claimRate: 2 })
  const post = (host: string, remoteAddress = '10.0.0.1') =>
    farm.app.inject({ method: 'POST', url: '/login', headers: { host }, remoteAddress })
  t.equal((await post('one.example')).statusCode, 200)
  t.equal((await post('two.example')).statusCode, 200)
  check429(t, await post('three.example'), 'WIKIFARM_ERR_RATE_LIMITED', 'a third claim')
  const { listDir } = await import('./fixtures/test-farm.js')
  t.same(await listDir(farm.data), ['one.example', 'two.example'], 'the refused claim made nothing')
  t.equal((await post('three.example', '10.0.0.9')).statusCode, 200, 'another address may claim')
})

t.test('edits: past editRate a minute per address, 429 and nothing written', async (t) => {
  const farm = await startFarm(t, { farm: true, editRate: 5 })
  const owner = await claim(t, farm.app, HOST)
  const put = (n: number, remoteAddress = '10.0.0.1') =>
    farm.app.inject({
      method: 'PUT',
      url: '/page/limited/action',
      remoteAddress,
      headers: { host: HOST, cookie: owner.cookie, 'content-type': FORM },
      payload: actionForm(
        n === 0
          ? { type: 'create', item: { title: 'Limited' }, date: 1 }
          : {
              type: 'add',
              id: n.toString(16).padStart(16, '0'),
              item: { type: 'paragraph', id: n.toString(16).padStart(16, '0'), text: `p${n}` },
              date: n + 1,
            },
      ),
    })
  for (let n = 0; n < 5; n++) t.equal((await put(n)).statusCode, 200, `edit ${n + 1}`)
  check429(t, await put(5), 'WIKIFARM_ERR_RATE_LIMITED', 'edit 6')
  const page = (await farm.app.inject({ url: '/limited.json', headers: { host: HOST } })).json() as { story: unknown[] }
  t.equal(page.story.length, 4, 'the refused edit was not applied')
  t.equal((await put(5, '10.0.0.2')).statusCode, 200, 'the owner from another address edits on')
  // The bad requests count too: a client cannot probe for free.
  const bad = await farm.app.inject({
    method: 'PUT',
    url: '/page/limited/action',
    headers: { host: HOST, cookie: owner.cookie, 'content-type': FORM },
    payload: 'action=nope',
    remoteAddress: '10.0.0.1',
  })
  t.equal(bad.statusCode, 429)
})

t.test('a setting of 0 turns its limit off', async (t) => {
  const farm = await startFarm(t, { farm: true, ...NO_LIMITS })
  const owner = await claim(t, farm.app, HOST)
  for (let i = 0; i < 50; i++) {
    const r = await farm.app.inject({
      method: 'POST',
      url: '/auth/reclaim/',
      headers: { host: HOST, 'content-type': 'text/plain' },
      payload: owner.secret,
    })
    if (r.statusCode !== 200) t.fail(`login ${i}: ${r.statusCode}`)
  }
  t.pass('50 logins from one address')
  const r = await putAction(farm.app, HOST, owner.cookie, 'free', { type: 'create', item: { title: 'Free' }, date: 1 })
  t.equal(r.statusCode, 200)
})

async function openMany(
  port: number,
  n: number,
  headers: Record<string, string> = {},
  host = HOST,
): Promise<WsClient[]> {
  const clients: WsClient[] = []
  for (let i = 0; i < n; i++) clients.push(await openWs(port, '/system/push', host, { headers }))
  return clients
}

async function closeAll(clients: WsClient[]): Promise<void> {
  for (const c of clients) c.ws.close()
  await Promise.all(clients.map((c) => c.waitClose()))
}

t.test('websocket upgrades: past upgradeRate a minute per address, 429 before the upgrade', async (t) => {
  const farm = await startFarm(t, { farm: true, upgradeRate: 3 })
  const port = await listenLocal(farm)
  const clients = await openMany(port, 3)
  const refused = await refusedUpgrade(port, '/system/push', HOST)
  t.equal(refused.status, 429, 'the 4th upgrade in a minute is refused')
  t.match(JSON.parse(refused.body), { code: 'WIKIFARM_ERR_RATE_LIMITED', error: /websocket connections a minute/ })
  const plugin = await refusedUpgrade(port, '/plugin/linkmap/', HOST)
  t.equal(plugin.status, 429, 'plugin sockets count against the same limit')
  const foreign = await refusedUpgrade(port, '/system/push', HOST, { origin: 'http://evil.example' })
  t.equal(foreign.status, 403, 'a foreign Origin is refused first, as always')
  t.equal(farm.kernel.sockets.size, 3, 'the refused upgrades reached no socket')
  await closeAll(clients)
})

t.test('open websockets: capped per address and per site; a closed one frees its place', async (t) => {
  // Behind a trusted proxy the client address is the forwarded one: several clients from here.
  const farm = await startFarm(t, { farm: true, trustProxy: true, socketsPerIp: 3, socketsPerSite: 5 })
  const port = await listenLocal(farm)
  const from = (ip: string) => ({ 'x-forwarded-for': ip })
  const first = await openMany(port, 3, from('10.0.0.1'))
  const over = await refusedUpgrade(port, '/system/push', HOST, { headers: from('10.0.0.1') })
  t.equal(over.status, 429, 'a 4th socket from one address')
  t.match(JSON.parse(over.body), {
    code: 'WIKIFARM_ERR_TOO_MANY_CONNECTIONS',
    error: /3 open websockets from 10\.0\.0\.1/,
  })
  const second = await openMany(port, 2, from('10.0.0.2'))
  const full = await refusedUpgrade(port, '/plugin/linkmap/', HOST, { headers: from('10.0.0.3') })
  t.equal(full.status, 429, 'a 6th socket on the site, from a fresh address')
  t.match(JSON.parse(full.body), {
    code: 'WIKIFARM_ERR_TOO_MANY_CONNECTIONS',
    error: /5 open websockets on a\.example/,
  })
  const elsewhere = await openMany(port, 1, from('10.0.0.3'), 'b.example')
  t.equal(elsewhere.length, 1, 'another site has its own cap')

  const one = first[0] as WsClient
  one.ws.close()
  await one.waitClose()
  await eventually(async () => {
    try {
      const again = await openWs(port, '/system/push', HOST, { headers: from('10.0.0.1') })
      first[0] = again
      return true
    } catch {
      return false
    }
  }, 2000, 'a place is freed by a close')
  t.pass('a closed socket frees its place')
  // The sockets that stayed open are served as before.
  const live = second[0] as WsClient
  live.send({ type: 'subscribe', id: 's', data: { key: 'alpha' } })
  t.match(await live.nextJson(), { type: 'subscribed', id: 's' })
  await closeAll([...first, ...second, ...elsewhere])
})

t.test('the limits are counted per kernel, for the farm listening on real sockets too', async (t) => {
  const farm = await startFarm(t, { farm: true, editRate: 2 })
  const app: FastifyInstance = farm.app
  const owner = await claim(t, app, HOST)
  const port = await listenLocal(farm)
  const { http } = await import('./fixtures/test-farm.js')
  const body = actionForm({ type: 'create', item: { title: 'X' }, date: 1 })
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) {
    const r = await http(port, 'PUT', `/page/p${i}/action`, HOST, {
      headers: { cookie: owner.cookie, 'content-type': FORM },
      body,
    })
    statuses.push(r.status)
    if (r.status === 429) t.match(r.headers['retry-after'], /^\d+$/, 'Retry-After on the wire')
  }
  t.same(statuses, [200, 200, 429])
})
