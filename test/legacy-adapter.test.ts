// The legacy adapter (core/plugin-host/legacy/) with a server part written as the reference's
// are (test/fixtures/legacy-packages/wiki-plugin-probe): launched once at boot; argv, session,
// securityhandler and pagehandler for the request's site; the kernel's routes never shadowed;
// throws, hangs and process.exit contained; failed starts and operator grants in status.json.
import t, { type Test } from 'tap'
import { join } from 'node:path'
import { existsSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { claim, http, listenLocal, startFarm, type TestFarm } from './fixtures/test-farm.js'
import { ADMIN_SECRET, adminLogin } from './fixtures/admin.js'
import type { LegacyStatus } from '../core/plugin-host/legacy/host.js'

const PACKAGES = join(import.meta.dirname, 'fixtures', 'legacy-packages')
const A = 'a.example'
const B = 'b.example'

async function probeFarm(t: Test, overrides = {}): Promise<{ farm: TestFarm; port: number }> {
  const config = { farm: true, admin: ADMIN_SECRET, pluginHandlerTimeoutMs: 500, ...overrides }
  const farm = await startFarm(t, config, undefined, { legacyNodeModules: [PACKAGES] })
  return { farm, port: await listenLocal(farm) }
}

async function legacyStatus(t: Test, farm: TestFarm, name: string): Promise<LegacyStatus | undefined> {
  const admin = await adminLogin(t, farm, A)
  const status = await farm.app.inject({ url: '/system/status.json', headers: { host: A, cookie: admin } })
  return (status.json() as { legacy: LegacyStatus[] }).legacy.find((p) => p.name === name)
}

t.test('each server part is started once, at boot; failed starts are reported and the farm serves on', async (t) => {
  const { farm, port } = await probeFarm(t)
  const probe = await legacyStatus(t, farm, 'probe')
  t.match(probe, { state: 'running', launches: 1, mode: 'shared', source: 'legacy wiki-plugin-probe@1.0.0' })
  const cannot = 'startServer failed: cannot find my settings'
  t.match(await legacyStatus(t, farm, 'throws'), { state: 'failed', reason: cannot, launches: 0 })
  t.match(await legacyStatus(t, farm, 'exits'), { state: 'failed', reason: 'called process.exit(3)' },
    'an exit at start fails only that plugin')
  t.equal(await legacyStatus(t, farm, 'noserver'), undefined, 'a client-only package has nothing to start')
  const failed = await http(port, 'GET', '/plugin/throws/x', A)
  t.equal(failed.status, 503)
  t.match(JSON.parse(failed.body), { code: 'WIKIFARM_ERR_PLUGIN_UNAVAILABLE', reason: cannot })

  for (let i = 0; i < 50; i++) {
    const response = await http(port, 'GET', '/plugin/probe/argv', `site${i}.example`)
    t.equal(JSON.parse(response.body).url, `http://site${i}.example`, `site ${i} sees its own argv`)
  }
  const starts = JSON.parse((await http(port, 'GET', '/plugin/probe/starts', A)).body)
  t.equal(starts.starts, 1, 'startServer ran once for 50 sites')
  t.equal(starts.hasPackageJson, true)
  t.same(starts.startArgv, {
    data: farm.data, assets: join(farm.data, '.legacy-farm', 'assets'), commons: join(farm.data, 'commons'),
    url: `http://localhost:${farm.kernel.config.port}`,
  }, 'at start, argv holds farm-level values')
  t.equal((await legacyStatus(t, farm, 'probe'))?.launches, 1)
})

t.test('argv: the reference keys and layout, for the site of the request, in callbacks too; no secrets', async (t) => {
  const { farm, port } = await probeFarm(t)
  const argv = JSON.parse((await http(port, 'GET', '/plugin/probe/argv', A)).body)
  const site = join(farm.data, A)
  t.match(argv, {
    data: site, db: join(site, 'pages'), status: join(site, 'status'), assets: join(site, 'assets'),
    recycler: join(site, 'recycle'), id: join(site, 'status', 'owner.json'), commons: join(farm.data, 'commons'),
    url: `http://${A}`, farm: true, f: true, security_type: 'wiki-security-friends', admin: 'configured',
    home: 'welcome-visitors', packageDir: PACKAGES,
  })
  t.notOk('cookieSecret' in argv, 'the cookie secret is not in argv')
  t.notMatch(JSON.stringify(argv), ADMIN_SECRET, 'nor the administrator secret')
  const [later, other] = await Promise.all([
    http(port, 'GET', '/plugin/probe/argv-later', A), http(port, 'GET', '/plugin/probe/argv-later', B),
  ])
  t.same(JSON.parse(later.body), { url: `http://${A}`, assets: join(site, 'assets') }, 'a callback keeps its request site')
  t.same(JSON.parse(other.body), { url: `http://${B}`, assets: join(farm.data, B, 'assets') })
})

t.test('req.session and app.securityhandler as friends fills them; the secret never reaches the plugin', async (t) => {
  const { farm, port } = await probeFarm(t)
  const owner = await claim(t, farm.app, A)
  const otherOwner = await claim(t, farm.app, B)
  const session = async (host: string, cookie?: string) =>
    JSON.parse((await http(port, 'GET', '/plugin/probe/session', host, { headers: cookie ? { cookie } : {} })).body)
  t.same(await session(A), { session: {}, authorized: false, admin: false }, 'a visitor')
  const mine = await session(A, owner.cookie)
  t.match(mine, { authorized: true, admin: false, session: { friend: /^[A-Za-z0-9_-]{22}$/ } }, 'the owner')
  t.not(mine.session.friend, owner.secret, 'session.friend stands for the secret, it is not the secret')
  t.match(await session(A, otherOwner.cookie), { authorized: false, admin: false },
    "another site's owner is a visitor here")
  const admin = await adminLogin(t, farm, A)
  t.match(await session(A, admin), { authorized: true, admin: true }, 'the farm administrator')
})

t.test('app.pagehandler reads and writes through the site\'s store, seen by sitemap and events', async (t) => {
  const { farm, port } = await probeFarm(t)
  const owner = await claim(t, farm.app, A)
  const changed: string[] = []
  farm.kernel.events.on('page.changed', (e) => { changed.push(`${e.site}/${e.slug}`) }, 'test')
  const page = { title: 'From a plugin', story: [{ type: 'paragraph', id: '0123456789abcdef', text: 'hello' }] }
  const json = { 'content-type': 'application/json' }
  const path = '/plugin/probe/page/from-plugin'
  const visitor = await http(port, 'PUT', path, A, { headers: json, body: JSON.stringify(page) })
  t.equal(visitor.status, 403, 'a visitor may not write')
  const asOwner = { ...json, cookie: owner.cookie }
  const put = await http(port, 'PUT', path, A, { headers: asOwner, body: JSON.stringify(page) })
  t.equal(put.body, 'ok')
  t.same(changed, [`${A}/from-plugin`], 'page.changed was emitted for the site')
  const read = await farm.app.inject({ url: '/from-plugin.json', headers: { host: A } })
  t.match(read.json(), page, 'the kernel serves what the plugin wrote')
  const sitemap = await farm.app.inject({ url: '/system/sitemap.json', headers: { host: A } })
  t.ok((sitemap.json() as { slug: string }[]).some((e) => e.slug === 'from-plugin'), 'the sitemap lists it')
  t.match(JSON.parse((await http(port, 'GET', path, A)).body), page, 'pagehandler.get reads it back')
  t.equal((await http(port, 'GET', path, B)).status, 404, 'another site does not see it')
  const bad = await http(port, 'PUT', '/plugin/probe/page/bad-page', A, { headers: asOwner, body: '{"story":"no"}' })
  t.equal(bad.status, 400, 'a malformed page is refused')
  t.notOk(existsSync(join(farm.data, A, 'pages', 'bad-page')))
})

t.test('writes land in the request\'s site; kernel routes never shadowed; paths outside /plugin/<name>', async (t) => {
  const { farm, port } = await probeFarm(t, { uploadLimit: 1024 })
  const owner = await claim(t, farm.app, A)
  const form = { 'content-type': 'application/x-www-form-urlencoded', cookie: owner.cookie }
  t.equal((await http(port, 'POST', '/plugin/probe/note', A, { headers: form, body: 'text=hi' })).body, 'ok')
  t.ok(existsSync(join(farm.data, A, 'assets', 'note.txt')), "in a.example's assets")
  t.notOk(existsSync(join(farm.data, B)), 'nothing in b.example')
  t.equal((await http(port, 'POST', '/plugin/probe/note', B, { headers: form, body: 'text=hi' })).status, 403,
    "a.example's owner is refused on b.example")

  const plugins = JSON.parse((await http(port, 'GET', '/system/plugins.json', A)).body) as string[]
  t.notOk(plugins.includes('shadowed'), 'the kernel answers /system/plugins.json')
  t.not(JSON.parse((await http(port, 'GET', '/welcome-visitors.json', A)).body).title, 'shadowed')
  const upload = await http(port, 'POST', '/plugins/probe/upload', A, { headers: { cookie: owner.cookie } })
  t.equal(upload.body, `uploaded to http://${A}`, 'a POST under /plugins/<name>/ reaches the plugin')
  t.equal((await http(port, 'GET', '/plugins/probe/upload', A)).status, 404, 'a GET there stays the client files\'')
  const foreign = await http(port, 'POST', '/plugins/probe/upload', A, { headers: { cookie: owner.cookie, origin: 'http://evil.example' } })
  t.equal(foreign.status, 403)
  t.equal(JSON.parse(foreign.body).code, 'WIKIFARM_ERR_FOREIGN_ORIGIN',
    'the kernel refuses a foreign origin before the plugin')
  const big = await http(port, 'POST', '/plugin/probe/note', A, { headers: form, body: `text=${'x'.repeat(2048)}` })
  t.equal(big.status, 413, 'a body over the upload limit is refused')
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/plugin/probe/note', agent: false,
      headers: {
        host: A, cookie: owner.cookie, 'content-type': 'application/x-www-form-urlencoded',
        'transfer-encoding': 'chunked',
      } },
    (res) => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', reject)
    req.end('text=chunked')
  })
  t.equal(chunked, 411, 'a body of undeclared length is refused: its size could not be capped unread')
  t.equal((await http(port, 'GET', '/plugin/probe/nothing-here', A)).status, 404)
  const nothing = JSON.parse((await http(port, 'GET', '/plugin/probe/nothing-here', A)).body)
  t.equal(nothing.code, 'WIKIFARM_ERR_PLUGIN_ROUTE_NOT_FOUND')
})

t.test('a throw, a hang and process.exit in a handler end only that request, or that plugin', async (t) => {
  const { farm, port } = await probeFarm(t)
  const later = await http(port, 'GET', '/plugin/probe/crash-later', A)
  t.equal(later.status, 500)
  t.equal(JSON.parse(later.body).code, 'WIKIFARM_ERR_PLUGIN_FAILED', 'a throw in a callback answers 500')
  t.equal((await http(port, 'GET', '/plugin/probe/crash-now', A)).status, 500, 'a throw in the handler answers 500')
  t.equal((await http(port, 'GET', '/plugin/probe/hang', A)).status, 504, 'a handler that never answers times out')
  t.match(await legacyStatus(t, farm, 'probe'), { state: 'running', faults: 1, lastFault: /forEach/ }, 'counted; the plugin serves on')
  t.equal((await http(port, 'GET', '/plugin/probe/argv', A)).status, 200)

  const exit = await http(port, 'POST', '/plugin/probe/exit', A)
  t.equal(exit.body, 'exiting', 'the plugin answered before calling process.exit')
  t.match(await legacyStatus(t, farm, 'probe'), { state: 'failed', reason: 'called process.exit(0)' })
  const after = await http(port, 'GET', '/plugin/probe/argv', A)
  t.equal(after.status, 503, 'the plugin is stopped')
  t.equal((await http(port, 'GET', '/welcome-visitors.json', A)).status, 200, 'the farm serves on')
})

t.test('plugins.<name>.enabled: false disables a legacy plugin; other grant keys are refused', async (t) => {
  const { farm, port } = await probeFarm(t, { plugins: { probe: { enabled: false } } })
  t.match(await legacyStatus(t, farm, 'probe'), { state: 'disabled', reason: 'disabled by the operator', launches: 0 })
  const response = await http(port, 'GET', '/plugin/probe/argv', A)
  t.equal(response.status, 404)
  t.equal(JSON.parse(response.body).code, 'WIKIFARM_ERR_PLUGIN_NOT_ENABLED')
  await t.rejects(startFarm(t, { plugins: { probe: { trust: 'farm' } } }, undefined, { legacyNodeModules: [PACKAGES] }),
    { code: 'WIKIFARM_ERR_PLUGIN_CONFIG', message: /legacy plugin; it takes only "enabled", "sites" and "mode"/ })
  const { port: onlyB } = await probeFarm(t, { plugins: { probe: { sites: [B] } } })
  t.equal((await http(onlyB, 'GET', '/plugin/probe/argv', A)).status, 404,
    'not served where the grant does not list the site')
  t.equal((await http(onlyB, 'GET', '/plugin/probe/argv', B)).status, 200)
})

t.test('plugins.<name>.mode "per-site": a fresh module instance per site, with that site\'s argv; failures stay there',
  async (t) => {
    const { farm, port } = await probeFarm(t, { plugins: { probe: { mode: 'per-site' } } })
    t.match(await legacyStatus(t, farm, 'probe'), { mode: 'per-site', state: 'running', launches: 0, instances: 0 })
    for (const host of [A, B, A, B]) {
      const starts = JSON.parse((await http(port, 'GET', '/plugin/probe/starts', host)).body)
      t.equal(starts.starts, 1, `${host}'s instance has module state of its own`)
      t.same(starts.startArgv.url, `http://${host}`, `${host}'s instance started with its own argv`)
    }
    t.match(await legacyStatus(t, farm, 'probe'), { launches: 2, instances: 2 })
    t.equal((await http(port, 'POST', '/plugin/probe/exit', A)).body, 'exiting')
    const status = await legacyStatus(t, farm, 'probe')
    t.match(status, { state: 'running', instances: 1, failedSites: { [A]: 'called process.exit(0)' } },
      'an exit stops only that site\'s instance')
    const stopped = await http(port, 'GET', '/plugin/probe/argv', A)
    t.equal(stopped.status, 503)
    t.match(JSON.parse(stopped.body), { reason: 'called process.exit(0)' })
    t.equal((await http(port, 'GET', '/plugin/probe/argv', B)).status, 200, 'b.example\'s instance serves on')
    await t.rejects(startFarm(t, { plugins: { probe: { mode: 'per-site' }, txtzyme: { mode: 'shared' } } }, undefined,
      { legacyNodeModules: [PACKAGES] }), { code: 'WIKIFARM_ERR_PLUGIN_CONFIG', message: /only legacy .* take "mode"/ },
    'a wikifarm plugin takes no mode')
  })
