// Dispatch with site and session: REST and websocket handlers of one plugin instance see the
// site of the request's Host and an opaque, stable session label per visitor and site; the
// client's identity claims reach them shape-checked.
import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { SESSION_COOKIE } from '../core/http/sessions.js'
import { claim, listenLocal, sessionCookie, startFarm } from './fixtures/test-farm.js'
import { openWs } from './fixtures/ws-client.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins/', import.meta.url))
const A = 'a.example'
const B = 'b.example'

interface WhoAmI {
  site: string
  session: string
  isOwner: boolean
  page: string | null
  item: string | null
  lineup: string[]
}

async function echoFarm(t: Test) {
  const farm = await startFarm(t, { farm: true }, undefined, { builtinPluginsDir: PLUGINS })
  return farm
}

type Farm = Awaited<ReturnType<typeof echoFarm>>

async function whoami(
  farm: Farm,
  host: string,
  cookie?: string,
  url = '/plugin/echo/whoami',
  headers: Record<string, string> = {},
) {
  const response = await farm.app.inject({ url, headers: { host, ...(cookie ? { cookie } : {}), ...headers } })
  return response
}

/** A visitor's cookie, as the kernel sets it on the first visit. */
async function visitor(farm: Farm, host: string): Promise<string> {
  const cookie = sessionCookie(await whoami(farm, host))
  if (!cookie) throw new Error('no session cookie on the first visit')
  return cookie
}

function sessionIdOf(cookie: string): string {
  const value = cookie.slice(SESSION_COOKIE.length + 1).split('.')[0] ?? ''
  return (JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as { i: string }).i
}

t.test('REST: each request sees its own site and a stable, opaque session label', async (t) => {
  const farm = await echoFarm(t)
  const one = await visitor(farm, A)
  const two = await visitor(farm, A)
  t.not(one, two, 'two visitors, two cookies')

  const oneA = (await whoami(farm, A, one)).json() as WhoAmI
  const oneAagain = (await whoami(farm, A, one)).json() as WhoAmI
  const twoA = (await whoami(farm, A, two)).json() as WhoAmI
  const oneB = (await whoami(farm, B, one)).json() as WhoAmI
  t.equal(oneA.site, A)
  t.equal(oneB.site, B)
  t.equal(oneA.session, oneAagain.session, 'stable for one visitor on one site')
  t.not(oneA.session, twoA.session, 'different visitors get different labels')
  t.not(oneA.session, oneB.session, 'the same visitor gets unlinkable labels on different sites')
  for (const label of [oneA.session, twoA.session, oneB.session]) {
    t.match(label, /^[A-Za-z0-9_-]{16,}$/)
    t.notOk(one.includes(label) || two.includes(label), 'the label is not part of the cookie')
    t.not(label, sessionIdOf(one))
    t.not(label, sessionIdOf(two))
  }
  t.notOk(JSON.stringify(oneA).includes(sessionIdOf(one)), 'the session id never reaches the plugin')

  // A visitor with no cookie is a fresh session each time: no label is shared by accident.
  const anon1 = (await whoami(farm, A)).json() as WhoAmI
  const anon2 = (await whoami(farm, A)).json() as WhoAmI
  t.not(anon1.session, anon2.session)
})

t.test('REST: interleaved requests on many hosts each get their own site and session', async (t) => {
  const farm = await echoFarm(t)
  const hosts = Array.from({ length: 12 }, (_, i) => `s${i}.example`)
  const cookies = await Promise.all(hosts.map((h) => visitor(farm, h)))
  const expected = await Promise.all(
    hosts.map(async (h, i) => ((await whoami(farm, h, cookies[i])).json() as WhoAmI).session),
  )
  const rounds = await Promise.all(
    Array.from({ length: 5 }, () => Promise.all(hosts.map((h, i) => whoami(farm, h, cookies[i])))),
  )
  for (const round of rounds) {
    round.forEach((response, i) => {
      const body = response.json() as WhoAmI
      t.equal(body.site, hosts[i])
      t.equal(body.session, expected[i])
    })
  }
  t.equal(new Set(expected).size, hosts.length, 'every visitor has its own label')
})

t.test('REST: ownership is the kernel\'s, per site', async (t) => {
  const farm = await echoFarm(t)
  const owner = await claim(t, farm.app, A)
  t.equal(((await whoami(farm, A, owner.cookie)).json() as WhoAmI).isOwner, true, 'the owner of a')
  t.equal(((await whoami(farm, B, owner.cookie)).json() as WhoAmI).isOwner, false, 'is nobody on b')
  t.equal(((await whoami(farm, A, await visitor(farm, A))).json() as WhoAmI).isOwner, false, 'another visitor of a')
})

t.test('REST: identity from the query or headers, shape-checked', async (t) => {
  const farm = await echoFarm(t)
  const q = (
    await whoami(farm, A, undefined, '/plugin/echo/whoami?page=welcome-visitors&item=00000000000000ab&lineup=one,two')
  ).json() as WhoAmI
  t.same([q.page, q.item, q.lineup], ['welcome-visitors', '00000000000000ab', ['one', 'two']])
  const h = (await whoami(farm, A, undefined, '/plugin/echo/whoami', {
    'x-wiki-page': 'from-header', 'x-wiki-item': '00000000000000cd', 'x-wiki-lineup': 'x',
  })).json() as WhoAmI
  t.same([h.page, h.item, h.lineup], ['from-header', '00000000000000cd', ['x']])
  const none = (await whoami(farm, A)).json() as WhoAmI
  t.same([none.page, none.item, none.lineup], [null, null, []])

  for (const bad of [
    '?page=Not_A_Slug', '?page=a&page=b', '?item=xyz', '?item=00000000000000ab&item=00000000000000cd',
    '?lineup=ok,NOT%20OK', '?lineup=a&lineup=b', `?lineup=${Array.from({ length: 51 }, (_, i) => `p${i}`).join(',')}`,
  ]) {
    const response = await whoami(farm, A, undefined, `/plugin/echo/whoami${bad}`)
    t.equal(response.statusCode, 400, `${bad.slice(0, 40)} is a 400`)
    t.equal(response.json().code, 'WIKIFARM_ERR_VALIDATION')
  }
  const badHeader = await whoami(farm, A, undefined, '/plugin/echo/whoami', { 'x-wiki-item': 'nope' })
  t.equal(badHeader.statusCode, 400, 'a malformed identity header is a 400 too')
})

t.test('websocket: each connection sees its site and the visitor\'s label, same as REST', async (t) => {
  const farm = await echoFarm(t)
  const port = await listenLocal(farm)
  const one = await visitor(farm, A)
  const two = await visitor(farm, A)
  const labels = {
    oneA: ((await whoami(farm, A, one)).json() as WhoAmI).session,
    twoA: ((await whoami(farm, A, two)).json() as WhoAmI).session,
    oneB: ((await whoami(farm, B, one)).json() as WhoAmI).session,
  }
  const clients = await Promise.all([
    openWs(port, '/plugin/echo/', A, { cookie: one }),
    openWs(port, '/plugin/echo/', A, { cookie: two }),
    openWs(port, '/plugin/echo/', B, { cookie: one }),
    openWs(port, '/plugin/echo/', A, { cookie: one }),
  ])
  const hellos = await Promise.all(
    clients.map((c) => c.nextJson<{ type: string; data: { site: string; session: string } }>()),
  )
  t.same(hellos.map((h) => [h.type, h.data.site, h.data.session]), [
    ['hello', A, labels.oneA], ['hello', A, labels.twoA], ['hello', B, labels.oneB], ['hello', A, labels.oneA],
  ])
  for (const c of clients) c.ws.close()
})

t.test("websocket: a message sent the moment the socket opens is not lost, even on a site's first visit", async (t) => {
  const farm = await echoFarm(t)
  const port = await listenLocal(farm)
  for (let i = 0; i < 8; i++) {
    const host = `fresh${i}.example`
    const client = await openWs(port, '/plugin/echo/', host)
    client.send({ type: 'ping', id: 'first', data: i })
    const hello = await client.nextJson()
    t.equal(hello.type, 'hello', `hello first on ${host}`)
    t.same(await client.nextJson(), { type: 'echo', id: 'first', data: i }, `the first message is answered on ${host}`)
    client.ws.close()
  }
})
