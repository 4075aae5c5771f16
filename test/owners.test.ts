// Owners, friends-style: claim, the session cookie, log out and back in with the secret,
// owner-only writes, read-only unclaimed sites, per-site cookies, the farm administrator,
// reference owner.json files, and foreign origins refused.
import t, { type Test } from 'tap'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { SESSION_COOKIE } from '../core/http/sessions.js'
import {
  claim, itemId, listDir, putAction, sessionCookie, snapshot, startFarm, storeFailingStatus, testData, type TestFarm,
} from './fixtures/test-farm.js'
import type { InjectOptions } from 'fastify'

const HOST = 'a.example'
const create = (title: string) => ({ type: 'create', item: { title }, date: 1 })

async function canWrite(
  farm: TestFarm,
  host: string,
  cookie: string | null,
  slug = `p${Math.random().toString(16).slice(2, 10)}`,
) {
  const response = await putAction(farm.app, host, cookie, slug, create('Probe'))
  return response.statusCode === 200 ? 200 : `${response.statusCode} ${response.json().code}`
}

function reclaim(farm: TestFarm, host: string, body: string, type: string, cookie?: string) {
  const headers: Record<string, string> = { host, 'content-type': type }
  if (cookie) headers.cookie = cookie
  return farm.app.inject({ method: 'POST', url: '/auth/reclaim/', headers, payload: body })
}

t.test('claim: the first visitor becomes the owner and gets the secret once', async (t) => {
  const farm = await startFarm(t, { farm: true })
  const read = await farm.app.inject({ url: '/welcome-visitors.json', headers: { host: HOST } })
  t.equal(read.headers['set-cookie'], undefined, 'a federated JSON read without a cookie gets none')
  const visit = await farm.app.inject({ url: '/welcome-visitors.html', headers: { host: HOST } })
  const visitor = sessionCookie(visit)
  t.ok(visitor, 'every visitor gets a session cookie with the first page they open')
  const again = await farm.app.inject({ url: '/welcome-visitors.html', headers: { host: HOST, cookie: visitor ?? '' } })
  t.equal(again.headers['set-cookie'], undefined, 'and it is sent only when new or changed')

  const login = await farm.app.inject({ method: 'POST', url: '/login', headers: { host: HOST, cookie: visitor ?? '' } })
  t.equal(login.statusCode, 200)
  t.match(login.headers['content-type'], /^application\/json/)
  const body = login.json() as { ownerName: string; secret: string }
  t.match(body.ownerName, /^([bcdfghjklmnprstvwy][aeiou]){3}$/, 'a pronounceable nickname')
  t.match(body.secret, /^[0-9a-f]{64}$/)
  const ownerFile = await readFile(join(farm.data, HOST, 'status', 'owner.json'), 'utf8')
  t.equal(
    ownerFile,
    JSON.stringify({ name: body.ownerName, friend: { secret: body.secret } }, null, 2),
    'owner.json in the reference format',
  )

  const setCookie = String(login.headers['set-cookie'])
  // The signature is base64; cookie@1 (Node 20) percent-encodes its + / =, cookie@2 did not.
  t.match(setCookie, new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]+\\.[A-Za-z0-9+/=%_-]+;`), 'a signed value')
  t.match(setCookie, /; HttpOnly/)
  t.match(setCookie, /; SameSite=Lax/)
  t.match(setCookie, /; Path=\//)
  t.match(setCookie, /; Max-Age=604800/, 'seven days')
  t.notMatch(setCookie, /; Secure/, 'not Secure unless configured')
  const cookie = sessionCookie(login) ?? ''
  const value = cookie.slice(SESSION_COOKIE.length + 1).split('.')[0] ?? ''
  t.notMatch(Buffer.from(value, 'base64url').toString('utf8'), body.secret, 'the cookie does not carry the secret')
  t.equal(await canWrite(farm, HOST, cookie), 200, 'the claimant may write')

  for (const who of [cookie, null]) {
    const second = await farm.app.inject({
      method: 'POST',
      url: '/login',
      headers: who ? { host: HOST, cookie: who } : { host: HOST },
    })
    t.equal(second.statusCode, 501, 'claimed: 501 as in the reference, even for the owner')
    t.equal(second.json().code, 'WIKIFARM_ERR_ALREADY_CLAIMED')
    t.notMatch(second.body, body.secret, 'the secret is never shown again')
  }
  t.equal(await readFile(join(farm.data, HOST, 'status', 'owner.json'), 'utf8'), ownerFile, 'owner.json unchanged')

  const session = await farm.app.inject({ url: '/system/session.json', headers: { host: HOST, cookie } })
  t.same(session.json(), { site: HOST, claimed: true, ownerName: body.ownerName, isOwner: true, isAdmin: false })
})

t.test('claim with secure_cookie sets Secure', async (t) => {
  const farm = await startFarm(t, { farm: true, secure_cookie: true })
  const login = await farm.app.inject({ method: 'POST', url: '/login', headers: { host: HOST } })
  t.match(String(login.headers['set-cookie']), /; Secure/)
})

t.test('two visitors claiming at once: exactly one owner, whose secret is on disk', async (t) => {
  const farm = await startFarm(t, { farm: true })
  const responses = await Promise.all(
    Array.from({ length: 5 }, () => farm.app.inject({ method: 'POST', url: '/login', headers: { host: HOST } })),
  )
  const winners = responses.filter((r) => r.statusCode === 200)
  t.equal(winners.length, 1, 'one claim succeeds')
  const winner = winners[0]
  if (!winner) return
  for (const loser of responses.filter((r) => r.statusCode !== 200)) {
    t.equal(loser.statusCode, 501, 'the others are refused as for any claimed site')
    t.equal(loser.json().code, 'WIKIFARM_ERR_ALREADY_CLAIMED')
    t.equal(loser.json().ownerName, winner.json().ownerName)
  }
  const owner = JSON.parse(await readFile(join(farm.data, HOST, 'status', 'owner.json'), 'utf8')) as {
    friend: { secret: string }
  }
  t.equal(owner.friend.secret, winner.json().secret, 'the secret handed out is the one kept')
  t.equal(await canWrite(farm, HOST, sessionCookie(winner)), 200)
})

t.test('a claim whose owner.json cannot be written leaves the site unclaimed, and claimable', async (t) => {
  let failing = true
  const farm = await startFarm(t, { farm: true }, undefined, {
    store: storeFailingStatus((name) => failing && name === 'owner.json'),
  })
  const failed = await farm.app.inject({ method: 'POST', url: '/login', headers: { host: HOST } })
  t.equal(failed.statusCode, 500)
  t.notMatch(failed.body, /"secret"/, 'no secret handed out for a claim that was not kept')
  t.equal(await canWrite(farm, HOST, sessionCookie(failed)), '403 WIKIFARM_ERR_READ_ONLY', 'still unclaimed')
  failing = false
  const owner = await claim(t, farm.app, HOST)
  t.equal(await canWrite(farm, HOST, owner.cookie), 200, 'the next claim works')
})

t.test('log out, then log in again with the secret', async (t) => {
  const farm = await startFarm(t, { farm: true })
  const owner = await claim(t, farm.app, HOST)
  const logout = await farm.app.inject({ url: '/logout', headers: { host: HOST, cookie: owner.cookie } })
  t.equal(logout.statusCode, 200)
  t.equal(logout.body, 'OK')
  const loggedOut = sessionCookie(logout)
  t.ok(loggedOut)
  t.not(loggedOut, owner.cookie)
  t.match(String(logout.headers['set-cookie']), /HttpOnly; SameSite=Lax/)
  t.equal(await canWrite(farm, HOST, loggedOut), '403 WIKIFARM_ERR_NOT_OWNER', 'logged out: no writes')
  t.equal(
    (await farm.app.inject({ method: 'POST', url: '/logout', headers: { host: HOST } })).statusCode,
    404,
    'POST /logout is not a route',
  )

  const wrong = await reclaim(farm, HOST, 'f'.repeat(64), 'text/plain;charset=UTF-8', loggedOut ?? undefined)
  t.equal(wrong.statusCode, 401)
  t.equal(wrong.json().code, 'WIKIFARM_ERR_BAD_SECRET')
  t.equal(wrong.headers['set-cookie'], undefined, 'a wrong secret changes no session')
  t.equal(
    (await reclaim(farm, HOST, owner.secret.slice(0, 63), 'text/plain')).statusCode,
    401,
    'a prefix is not the secret',
  )
  t.equal((await reclaim(farm, HOST, '', 'text/plain')).statusCode, 400, 'an empty body')
  t.equal((await reclaim(farm, HOST, 'x'.repeat(500), 'text/plain')).statusCode, 400, 'an absurd body')

  // As the reference client sends it: the secret as the raw text/plain body.
  const back = await reclaim(farm, HOST, owner.secret, 'text/plain;charset=UTF-8', loggedOut ?? undefined)
  t.equal(back.statusCode, 200)
  t.same(back.json(), { ownerName: owner.ownerName, owner: true, admin: false })
  t.equal(await canWrite(farm, HOST, sessionCookie(back)), 200)

  // And as JSON, without the trailing slash.
  const json = await farm.app.inject({
    method: 'POST',
    url: '/auth/reclaim',
    headers: { host: HOST, 'content-type': 'application/json' },
    payload: { secret: owner.secret },
  })
  t.equal(json.statusCode, 200)
  t.equal(await canWrite(farm, HOST, sessionCookie(json)), 200)
})

t.test('owner-only writes; unclaimed sites are read-only unless security_legacy', async (t) => {
  const farm = await startFarm(t, { farm: true })
  const writes = (cookie: string | null): InjectOptions[] => {
    const headers: Record<string, string> = cookie ? { host: HOST, cookie } : { host: HOST }
    return [
      {
        method: 'PUT',
        url: '/page/x/action',
        headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
        payload: `action=${encodeURIComponent(JSON.stringify(create('X')))}`,
      },
      { method: 'DELETE', url: '/welcome-visitors.json', headers },
      {
        method: 'POST',
        url: '/favicon.png',
        headers: { ...headers, 'content-type': 'application/json' },
        payload: { image: 'iVBORw0KGgo=' },
      },
      { method: 'GET', url: '/recycler/system/slugs.json', headers },
      { method: 'GET', url: '/recycler/x.json', headers },
      { method: 'DELETE', url: '/recycler/x.json', headers },
    ]
  }
  const visitor = sessionCookie(await farm.app.inject({ url: '/', headers: { host: HOST } }))
  for (const request of writes(visitor)) {
    const response = await farm.app.inject(request)
    t.equal(response.statusCode, 403, `unclaimed: ${request.method} ${request.url}`)
    t.equal(response.json().code, 'WIKIFARM_ERR_READ_ONLY')
  }
  t.same(await snapshot(farm.data), {}, 'nothing written to an unclaimed site')

  const owner = await claim(t, farm.app, HOST)
  for (const cookie of [visitor, null]) {
    for (const request of writes(cookie)) {
      const response = await farm.app.inject(request)
      t.equal(response.statusCode, 403, `claimed, not the owner: ${request.method} ${request.url}`)
      t.equal(response.json().code, 'WIKIFARM_ERR_NOT_OWNER')
    }
  }
  t.same(await listDir(join(farm.data, HOST)), ['status'])
  t.equal(await canWrite(farm, HOST, owner.cookie, 'x'), 200)

  // A forged cookie: the owner's value with another signature, or re-signed by nobody.
  const [name, signed] = owner.cookie.split('=') as [string, string]
  const [value] = signed.split('.') as [string]
  t.equal(
    await canWrite(farm, HOST, `${name}=${value}.AAAA${signed.slice(value.length + 5)}`),
    '403 WIKIFARM_ERR_NOT_OWNER',
    'bad signature',
  )
  t.equal(await canWrite(farm, HOST, `${name}=${value}`), '403 WIKIFARM_ERR_NOT_OWNER', 'unsigned')
})

t.test('security_legacy opens unclaimed sites, and only those', async (t) => {
  const farm = await startFarm(t, { farm: true, security_legacy: true })
  t.equal(await canWrite(farm, 'open.example', null, 'x'), 200, 'anyone writes to an unclaimed site')
  t.same(await listDir(join(farm.data, 'open.example', 'pages')), ['x'])
  const owner = await claim(t, farm.app, 'open.example')
  t.equal(await canWrite(farm, 'open.example', null), '403 WIKIFARM_ERR_NOT_OWNER', 'claimed: the owner only')
  t.equal(await canWrite(farm, 'open.example', owner.cookie), 200)
})

t.test('an owner cookie from one site does not work on another', async (t) => {
  const farm = await startFarm(t, { farm: true })
  const a = await claim(t, farm.app, 'a.example')
  const b = await claim(t, farm.app, 'b.example')
  t.equal(await canWrite(farm, 'b.example', a.cookie), '403 WIKIFARM_ERR_NOT_OWNER')
  t.equal(await canWrite(farm, 'a.example', b.cookie), '403 WIKIFARM_ERR_NOT_OWNER')
  t.equal(await canWrite(farm, 'c.example', a.cookie), '403 WIKIFARM_ERR_READ_ONLY')
  // Not even a's secret proved on b, unless b's owner uses the same secret (they do not).
  t.equal((await reclaim(farm, 'b.example', a.secret, 'text/plain')).statusCode, 401)
  t.equal(await canWrite(farm, 'a.example', a.cookie), 200)
  t.equal(await canWrite(farm, 'b.example', b.cookie), 200)
  t.same(await listDir(join(farm.data, 'c.example')), [], 'nothing written for c.example')
})

t.test('the farm administrator: any site, and /system/version.json', async (t) => {
  const admin = 'the-administrator-secret-0123456789'
  const farm = await startFarm(t, { farm: true, admin })
  const owner = await claim(t, farm.app, 'a.example')
  const version = (cookie: string | null, host = 'a.example') =>
    farm.app.inject({ url: '/system/version.json', headers: cookie ? { host, cookie } : { host } })
  t.equal((await version(null)).statusCode, 403, 'anonymous is not the admin (the reference says otherwise)')
  t.equal((await version(owner.cookie)).statusCode, 403, 'an owner is not the admin')

  const login = await reclaim(farm, 'a.example', admin, 'text/plain')
  t.equal(login.statusCode, 200)
  t.same(login.json(), { ownerName: owner.ownerName, owner: false, admin: true })
  const cookie = sessionCookie(login)
  const v = await version(cookie)
  t.equal(v.statusCode, 200)
  t.same(Object.keys(v.json()).sort(), ['node', 'wikifarm'])
  t.equal(v.json().node, process.version)
  t.equal(await canWrite(farm, 'a.example', cookie), 200, "the admin edits a claimed site that is not theirs")
  t.same(
    (
      await farm.app.inject({ url: '/system/session.json', headers: { host: 'a.example', cookie: cookie ?? '' } })
    ).json(),
    { site: 'a.example', claimed: true, ownerName: owner.ownerName, isOwner: true, isAdmin: true },
  )

  // An unclaimed site too, after logging in there.
  const there = await reclaim(farm, 'unclaimed.example', admin, 'application/json', undefined)
  t.equal(there.statusCode, 400, 'a bare secret labelled as JSON is not JSON')
  const there2 = await farm.app.inject({
    method: 'POST',
    url: '/auth/reclaim/',
    headers: { host: 'unclaimed.example', 'content-type': 'application/json' },
    payload: { secret: admin },
  })
  t.equal(there2.statusCode, 200)
  t.equal(await canWrite(farm, 'unclaimed.example', sessionCookie(there2)), 200)
  t.equal(
    await canWrite(farm, 'unclaimed.example', cookie),
    '403 WIKIFARM_ERR_READ_ONLY',
    'an admin login is per site, like any cookie',
  )
  t.equal(
    (await reclaim(farm, 'nobody.example', 'not-the-admin', 'text/plain')).json().code,
    'WIKIFARM_ERR_NOT_CLAIMED',
  )
})

t.test('a reference owner.json is honoured as it is', async (t) => {
  const secret = 'c0ffee'.repeat(10) + 'abcd'
  const ownerJson = JSON.stringify({ name: 'fovisu', friend: { secret }, extra: 'kept' }, null, '  ')
  const data = testData(t, { 'a.example': { status: { 'owner.json': ownerJson } } })
  const farm = await startFarm(t, { farm: true }, data)
  const login = await farm.app.inject({ method: 'POST', url: '/login', headers: { host: HOST } })
  t.equal(login.statusCode, 501, 'already claimed')
  t.equal(login.json().ownerName, 'fovisu')
  t.equal(await canWrite(farm, HOST, null), '403 WIKIFARM_ERR_NOT_OWNER')
  const back = await reclaim(farm, HOST, secret, 'text/plain;charset=UTF-8')
  t.equal(back.statusCode, 200)
  t.equal(back.json().ownerName, 'fovisu')
  t.equal(await canWrite(farm, HOST, sessionCookie(back), 'mine'), 200)
  t.equal(await readFile(join(data, HOST, 'status', 'owner.json'), 'utf8'), ownerJson, 'owner.json untouched')
})

t.test('mutating requests from a foreign origin are refused and change nothing', async (t) => {
  const farm = await startFarm(t, { farm: true, origins: ['https://editor.example'] })
  const withOrigin = async (origin: Record<string, string>, request: InjectOptions) =>
    farm.app.inject({ ...request, headers: { ...request.headers, ...origin } })

  // A foreign site cannot claim on a visitor's behalf.
  const foreignClaim = await withOrigin(
    { origin: 'http://evil.example' },
    { method: 'POST', url: '/login', headers: { host: 'a.example:3000' } },
  )
  t.equal(foreignClaim.statusCode, 403)
  t.equal(foreignClaim.json().code, 'WIKIFARM_ERR_FOREIGN_ORIGIN')
  t.same(await snapshot(farm.data), {})
  const own = await withOrigin(
    { origin: 'http://a.example:3000' },
    { method: 'POST', url: '/login', headers: { host: 'a.example:3000' } },
  )
  t.equal(own.statusCode, 200, 'its own origin, port included')
  const cookie = sessionCookie(own) ?? ''
  const before = await snapshot(farm.data)

  const action = (slug: string): InjectOptions => ({
    method: 'PUT', url: `/page/${slug}/action`,
    headers: { host: 'a.example:3000', cookie, 'content-type': 'application/x-www-form-urlencoded' },
    payload: `action=${encodeURIComponent(JSON.stringify(create('X')))}`,
  })
  const refused: Array<[string, Record<string, string>, InjectOptions]> = [
    ['another host', { origin: 'http://evil.example' }, action('x')],
    ['another port', { origin: 'http://a.example:4000' }, action('x')],
    ['a subdomain', { origin: 'http://b.a.example:3000' }, action('x')],
    ['origin null', { origin: 'null' }, action('x')],
    ['cross-site fetch without Origin', { 'sec-fetch-site': 'cross-site' }, action('x')],
    [
      'DELETE',
      { origin: 'http://evil.example' },
      { method: 'DELETE', url: '/welcome-visitors.json', headers: { host: 'a.example:3000', cookie } },
    ],
    [
      'favicon',
      { origin: 'http://evil.example' },
      {
        method: 'POST',
        url: '/favicon.png',
        headers: { host: 'a.example:3000', cookie, 'content-type': 'application/json' },
        payload: { image: 'iVBORw0KGgo=' },
      },
    ],
    [
      'reclaim',
      { origin: 'http://evil.example' },
      {
        method: 'POST',
        url: '/auth/reclaim/',
        headers: { host: 'a.example:3000', 'content-type': 'text/plain' },
        payload: 'x',
      },
    ],
  ]
  for (const [why, origin, request] of refused) {
    const response = await withOrigin(origin, request)
    t.equal(response.statusCode, 403, why)
    t.equal(response.json().code, 'WIKIFARM_ERR_FOREIGN_ORIGIN', why)
  }
  t.same(await snapshot(farm.data), before, 'no refused request changed a file')

  t.equal(
    (await withOrigin({ origin: 'HTTP://A.EXAMPLE:3000' }, action('same-origin'))).statusCode,
    200,
    'origins compare case-insensitively',
  )
  t.equal((await withOrigin({ origin: 'https://a.example:3000' }, action('over-tls'))).statusCode, 200)
  t.equal(
    (await withOrigin({ origin: 'https://editor.example' }, action('configured'))).statusCode,
    200,
    'an origin the operator allowed',
  )
  t.equal((await withOrigin({ 'sec-fetch-site': 'same-origin' }, action('no-origin'))).statusCode, 200)
  t.equal((await withOrigin({}, action('no-headers'))).statusCode, 200, 'non-browser clients send no Origin')
  const read = await withOrigin(
    { origin: 'http://evil.example' },
    { url: '/welcome-visitors.json', headers: { host: 'a.example:3000' } },
  )
  t.equal(read.statusCode, 200, 'reads from anywhere are fine')
  t.same(await listDir(join(farm.data, 'a.example', 'pages')), [
    'configured',
    'no-headers',
    'no-origin',
    'over-tls',
    'same-origin',
  ])
})

t.test('claiming a site whose folder already exists keeps what is there', async (t: Test) => {
  const data = testData(t, { 'a.example': { status: { 'sitemap.json': '[]' }, assets: { 'keep.txt': 'x' } } })
  const farm = await startFarm(t, { farm: true }, data)
  await claim(t, farm.app, HOST)
  t.same(await listDir(join(data, HOST, 'status')), ['owner.json', 'sitemap.json'])
  t.equal(await readFile(join(data, HOST, 'assets', 'keep.txt'), 'utf8'), 'x')
  await mkdir(join(data, 'b.example', 'status'), { recursive: true })
  await writeFile(
    join(data, 'b.example', 'status', 'owner.json'),
    JSON.stringify({ name: 'x', friend: { secret: itemId(7) } }),
  )
  t.equal((await farm.app.inject({ method: 'POST', url: '/login', headers: { host: 'b.example' } })).statusCode, 501)
})
