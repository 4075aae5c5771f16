// Sessions the server ends: a cookie is refused `session_duration` after it was issued, even
// replayed by hand; logging out ends every copy of every login to that site; fractional
// durations work and a claim is never kept without its reply; a login draws a new visitor id;
// GET /logout from a foreign origin is refused while the reference client's own request works.
import t, { type Test } from 'tap'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { FreshSession, SESSION_COOKIE, SessionKeeper } from '../core/http/sessions.js'
import { SESSIONS_FILE } from '../core/pages/sites.js'
import { parseCli } from '../core/boot/cli.js'
import {
  claim, COOKIE_SECRET, putAction, sessionCookie, startFarm, type TestFarm,
} from './fixtures/test-farm.js'

const HOST = 'a.example'
const DAY_MS = 24 * 3600 * 1000
const PLUGINS = fileURLToPath(new URL('./fixtures/plugins/', import.meta.url))

async function canWrite(farm: TestFarm, cookie: string | null, host = HOST): Promise<200 | string> {
  const slug = `p${Math.random().toString(16).slice(2, 10)}`
  const response = await putAction(farm.app, host, cookie, slug, { type: 'create', item: { title: 'Probe' }, date: 1 })
  return response.statusCode === 200 ? 200 : `${response.statusCode} ${(response.json() as { code: string }).code}`
}

function reclaim(farm: TestFarm, secret: string, cookie?: string, host = HOST) {
  const headers: Record<string, string> = { host, 'content-type': 'text/plain;charset=UTF-8' }
  if (cookie) headers.cookie = cookie
  return farm.app.inject({ method: 'POST', url: '/auth/reclaim/', headers, payload: secret })
}

/** What the cookie carries, unsigned: { i: visitor id, t: issued, f, s, e }. */
function cookieBody(cookie: string): Record<string, unknown> {
  const value = cookie.slice(SESSION_COOKIE.length + 1)
  const unsigned = value.slice(0, value.lastIndexOf('.'))
  return JSON.parse(Buffer.from(unsigned, 'base64url').toString('utf8')) as Record<string, unknown>
}

/** A cookie signed with the farm's key, as only the farm (or a stolen copy of one) can make. */
function forge(farm: TestFarm, body: Record<string, unknown>): string {
  return `${SESSION_COOKIE}=${farm.app.signCookie(Buffer.from(JSON.stringify(body)).toString('base64url'))}`
}

t.test('a cookie replayed after session_duration is refused by the server', async (t) => {
  const seconds = 1.5
  const farm = await startFarm(t, { farm: true, session_duration: seconds / 86400 })
  const owner = await claim(t, farm.app, HOST)
  t.equal(await canWrite(farm, owner.cookie), 200, 'a fresh login edits')
  t.type(cookieBody(owner.cookie).t, 'number', 'the signed cookie carries its issue time')
  await sleep(seconds * 1000 + 200)
  // The browser would have dropped it (Max-Age); a copy sent by hand is refused all the same.
  t.equal(await canWrite(farm, owner.cookie), '403 WIKIFARM_ERR_NOT_OWNER', 'expired: no edit')
  const session = await farm.app.inject({ url: '/system/session.json', headers: { host: HOST, cookie: owner.cookie } })
  t.equal((session.json() as { isOwner: boolean }).isOwner, false)
  const page = await farm.app.inject({ url: '/welcome-visitors.html', headers: { host: HOST, cookie: owner.cookie } })
  const fresh = sessionCookie(page)
  t.ok(fresh, 'an expired cookie is answered with a new one, as if none had come')
  t.not(cookieBody(fresh ?? '').i, cookieBody(owner.cookie).i, 'with a new visitor id')
  const again = await reclaim(farm, owner.secret)
  t.equal(again.statusCode, 200, 'the secret logs in again')
  t.equal(await canWrite(farm, sessionCookie(again)), 200)
})

t.test('cookies signed by the farm but without a current issue time prove nothing', async (t) => {
  const farm = await startFarm(t, { farm: true })
  const owner = await claim(t, farm.app, HOST)
  const keeper = new SessionKeeper(COOKIE_SECRET, farm.kernel.config.session_duration * DAY_MS)
  const login = { i: 'x'.repeat(22), f: keeper.digest(owner.secret), s: HOST, e: 0 }
  const now = Date.now()
  t.equal(await canWrite(farm, forge(farm, { ...login, t: now })), 200, 'control: a well-formed login edits')
  const refused: Array<[string, Record<string, unknown>]> = [
    ['no issue time (the cookie format before sessions expired)', login],
    ['issued one duration and a second ago', { ...login, t: now - 7 * DAY_MS - 1000 }],
    ['issued an hour from now', { ...login, t: now + 3600 * 1000 }],
    ['an issue time that is not a number', { ...login, t: String(now) }],
    ['no epoch', { i: login.i, f: login.f, s: HOST, t: now }],
    ['another epoch', { ...login, t: now, e: 1 }],
    ['another site', { ...login, t: now, s: 'b.example' }],
  ]
  for (const [what, body] of refused) {
    t.equal(await canWrite(farm, forge(farm, body)), '403 WIKIFARM_ERR_NOT_OWNER', what)
  }
})

t.test('logging out ends every copy of every login to the site', async (t) => {
  const farm = await startFarm(t, { farm: true, admin: 'the-admin-secret' })
  const owner = await claim(t, farm.app, HOST)
  const laptop = sessionCookie(await reclaim(farm, owner.secret)) ?? ''
  const admin = sessionCookie(await reclaim(farm, 'the-admin-secret')) ?? ''
  const other = await claim(t, farm.app, 'b.example')
  const copy = owner.cookie // what a thief, or a shared computer's history, kept
  for (const cookie of [owner.cookie, laptop, admin]) t.equal(await canWrite(farm, cookie), 200)

  // A visitor who is not logged in logs out only themselves.
  const visit = await farm.app.inject({ url: '/welcome-visitors.html', headers: { host: HOST } })
  const visitor = sessionCookie(visit) ?? ''
  t.equal((await farm.app.inject({ url: '/logout', headers: { host: HOST, cookie: visitor } })).statusCode, 200)
  t.equal(await canWrite(farm, owner.cookie), 200, "a visitor's logout ends no one else's login")
  const ownerFile = await readFile(join(farm.data, HOST, 'status', 'owner.json'), 'utf8')

  const logout = await farm.app.inject({ url: '/logout', headers: { host: HOST, cookie: owner.cookie } })
  t.equal(logout.statusCode, 200)
  t.equal(logout.body, 'OK')
  for (const [what, cookie] of [['the cookie logged out', owner.cookie], ['a copy of it', copy],
    ['the same owner on another browser', laptop], ['the administrator on this site', admin]] as const) {
    t.equal(await canWrite(farm, cookie), '403 WIKIFARM_ERR_NOT_OWNER', `${what}: no more edits`)
  }
  t.equal(await canWrite(farm, other.cookie, 'b.example'), 200, "another site's owner is untouched")
  const epoch = JSON.parse(await readFile(join(farm.data, HOST, 'status', SESSIONS_FILE), 'utf8')) as { epoch: number }
  t.equal(epoch.epoch, 1, `the site's session epoch is kept in status/${SESSIONS_FILE}`)
  t.equal(await readFile(join(farm.data, HOST, 'status', 'owner.json'), 'utf8'), ownerFile,
    'owner.json is the reference format, unchanged')

  const back = await reclaim(farm, owner.secret, owner.cookie)
  t.equal(back.statusCode, 200)
  t.equal(await canWrite(farm, sessionCookie(back)), 200, 'logging in again works, in the new epoch')
  t.equal(await canWrite(farm, copy), '403 WIKIFARM_ERR_NOT_OWNER', 'and the old copy stays dead')

  // Revocation outlives the process: a new farm on the same folder reads the epoch.
  await farm.kernel.close()
  const restarted = await startFarm(t, { farm: true }, farm.data)
  t.equal(await canWrite(restarted, copy), '403 WIKIFARM_ERR_NOT_OWNER', 'after a restart too')
  t.equal(await canWrite(restarted, sessionCookie(back)), 200)
})

t.test('fractional session_duration: logins and visits answer 200, Max-Age in whole seconds', async (t) => {
  const parsed = parseCli(['--farm', '--session_duration', '0.1'], {})
  if (!('config' in parsed)) throw new Error('parseCli gave no config')
  t.equal(parsed.config.session_duration, 0.1, 'the flag takes a fraction of a day')
  for (const days of [0.1, 0.3, 1.5, 7.25, 1e-5]) {
    const farm = await startFarm(t, { farm: true, session_duration: days })
    const login = await farm.app.inject({ method: 'POST', url: '/login', headers: { host: HOST } })
    const onDisk = await readFile(join(farm.data, HOST, 'status', 'owner.json'), 'utf8').catch(() => null)
    // The invariant, whatever happens: a site is claimed only by a claim whose secret was answered.
    t.equal(onDisk !== null, login.statusCode === 200,
      `${days} days: owner.json exists exactly when the claim answered`)
    t.equal(login.statusCode, 200, `${days} days: POST /login`)
    const { secret } = login.json() as { secret: string }
    const kept = JSON.parse(onDisk ?? '{}') as { friend?: { secret?: string } }
    t.equal(kept.friend?.secret, secret, 'the secret kept is the one answered')
    const maxAge = Math.max(1, Math.round(days * DAY_MS / 1000))
    t.match(String(login.headers['set-cookie']), new RegExp(`; Max-Age=${maxAge};`), `Max-Age=${maxAge}`)
    const cookie = sessionCookie(login)
    if (days > 1e-4) t.equal(await canWrite(farm, cookie), 200, 'the owner edits')
    t.equal((await reclaim(farm, secret)).statusCode, 200, 'logging in with the secret')
    const page = await farm.app.inject({ url: '/welcome-visitors.html', headers: { host: 'b.example' } })
    t.equal(page.statusCode, 200, 'a first visit, which sets a cookie')
    t.ok(sessionCookie(page))
  }
})

t.test('a login draws a new visitor id: a planted cookie never labels the owner', async (t) => {
  const farm = await startFarm(t, { farm: true }, undefined, { builtinPluginsDir: PLUGINS })
  const owner = await claim(t, farm.app, HOST)
  await farm.app.inject({ url: '/logout', headers: { host: HOST, cookie: owner.cookie } })
  const whoami = async (cookie: string) =>
    (await farm.app.inject({ url: '/plugin/echo/whoami', headers: { host: HOST, cookie } }))
      .json() as { session: string; isOwner: boolean }
  // The attacker's own valid cookie, planted in the owner's browser (a sibling subdomain can).
  const planted = sessionCookie(await farm.app.inject({ url: '/welcome-visitors.html', headers: { host: HOST } })) ?? ''
  const attackerLabel = (await whoami(planted)).session
  const login = await reclaim(farm, owner.secret, planted)
  t.equal(login.statusCode, 200)
  const loggedIn = sessionCookie(login) ?? ''
  t.not(cookieBody(loggedIn).i, cookieBody(planted).i, 'the login cookie has a new visitor id')
  const ownerView = await whoami(loggedIn)
  t.equal(ownerView.isOwner, true)
  t.not(ownerView.session, attackerLabel, 'plugins see the owner under a label the attacker does not hold')
  const attackerView = await whoami(planted)
  t.equal(attackerView.isOwner, false)
  t.equal(attackerView.session, attackerLabel, "the attacker's cookie is still only the attacker")

  const firstVisit = await farm.app.inject({ url: '/welcome-visitors.html', headers: { host: 'c.example' } })
  const claimant = sessionCookie(firstVisit) ?? ''
  const claimed = await farm.app.inject({
    method: 'POST', url: '/login', headers: { host: 'c.example', cookie: claimant },
  })
  t.equal(claimed.statusCode, 200)
  t.not(cookieBody(sessionCookie(claimed) ?? '').i, cookieBody(claimant).i, 'claiming draws a new id too')
})

async function loggedInOwner(t: Test, farm: TestFarm): Promise<string> {
  const owner = await claim(t, farm.app, HOST)
  return owner.cookie
}

t.test('GET /logout: a foreign origin is refused; the reference client logs out', async (t) => {
  const farm = await startFarm(t, { farm: true, origins: ['https://editor.example'] })
  const cookie = await loggedInOwner(t, farm)
  const foreign: Array<[string, Record<string, string>]> = [
    ['an Origin of another farm', { origin: 'http://evil.example' }],
    ['an Origin of a sibling site', { origin: 'http://b.example' }],
    ['Origin null', { origin: 'null' }],
    // A link or script on another site navigates to /logout: no Origin on a GET navigation.
    ['a cross-site navigation', { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' }],
    ['a sibling site of the farm', { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'navigate' }],
    ['a browser without Fetch Metadata, from another site', { referer: 'http://evil.example/page' }],
    ['a malformed Referer', { referer: 'not a url' }],
  ]
  for (const [what, headers] of foreign) {
    const response = await farm.app.inject({ url: '/logout', headers: { host: HOST, cookie, ...headers } })
    t.equal(response.statusCode, 403, what)
    t.equal((response.json() as { code: string }).code, 'WIKIFARM_ERR_FOREIGN_ORIGIN', what)
    t.equal(response.headers['set-cookie'], undefined, `${what}: no cookie changed`)
    t.equal(await canWrite(farm, cookie), 200, `${what}: the owner is still logged in`)
  }
  t.equal(await stat(join(farm.data, HOST, 'status', SESSIONS_FILE)).catch(() => null), null,
    'no refused logout moved the epoch')

  // What wiki-security-friends' client sends: fetch('/logout', {method: 'GET', mode:
  // 'same-origin', credentials: 'include', cache: 'no-cache'}) from a page of the site; as
  // Chromium sends it (test/browser-client.test.ts runs it for real): no Origin on a GET.
  const own: Array<[string, Record<string, string>]> = [
    ['the reference client in Chromium', {
      'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'same-origin', 'sec-fetch-dest': 'empty',
      referer: `http://${HOST}/view/welcome-visitors`, 'cache-control': 'max-age=0', accept: '*/*',
    }],
    ['the site\'s own Origin', { origin: `http://${HOST}` }],
    ['an origin the operator allowed', { origin: 'https://editor.example' }],
    ['a browser without Fetch Metadata, from the site', { referer: `https://${HOST}/view/welcome-visitors` }],
    ['the address typed in', { 'sec-fetch-site': 'none', 'sec-fetch-mode': 'navigate' }],
    ['curl', {}],
  ]
  const ownerFile = JSON.parse(await readFile(join(farm.data, HOST, 'status', 'owner.json'), 'utf8')) as
    { friend: { secret: string } }
  for (const [what, headers] of own) {
    const owner = sessionCookie(await reclaim(farm, ownerFile.friend.secret)) ?? ''
    t.equal(await canWrite(farm, owner), 200)
    const response = await farm.app.inject({ url: '/logout', headers: { host: HOST, cookie: owner, ...headers } })
    t.equal(response.statusCode, 200, what)
    t.equal(await canWrite(farm, owner), '403 WIKIFARM_ERR_NOT_OWNER', `${what}: logged out`)
  }
})

t.test('a session epoch file that is not an epoch: no login is honoured, nothing is written', async (t) => {
  const farm = await startFarm(t, { farm: true })
  const owner = await claim(t, farm.app, HOST)
  await farm.kernel.close()
  await writeFile(join(farm.data, HOST, 'status', SESSIONS_FILE), '{"epoch": "seven"}')
  const again = await startFarm(t, { farm: true }, farm.data)
  const refused = await putAction(again.app, HOST, owner.cookie, 'not-written', {
    type: 'create',
    item: { title: 'X' },
    date: 1,
  })
  t.equal(refused.statusCode, 500)
  t.equal((refused.json() as { code: string }).code, 'WIKIFARM_ERR_STORE', 'the operator is told which file')
  t.equal(await stat(join(farm.data, HOST, 'pages', 'not-written')).catch(() => null), null, 'no page written')
  const read = await again.app.inject({ url: '/welcome-visitors.json', headers: { host: HOST } })
  t.equal(read.statusCode, 200, 'visitors still read the site')
})

t.test('visitor ids: 128 random bits each, never repeated across refills of the random pool', async (t) => {
  const ids = Array.from({ length: 2000 }, () => new FreshSession().id)
  t.equal(new Set(ids).size, ids.length, '2,000 ids (several pool refills), all distinct')
  t.ok(ids.every((id) => /^[A-Za-z0-9_-]{22}$/.test(id)), 'each 16 bytes as base64url')
  const fresh = new FreshSession()
  t.equal(fresh.peekId(), fresh.id, 'a session keeps the id it was given')
})
