// Sites open lazily on their first request and close when idle, so memory follows the
// active sites, not the folders on disk; a closed site reopens with everything it had.
import t from 'tap'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startFarm, claim, putAction, listenLocal } from './fixtures/test-farm.js'
import { openWs } from './fixtures/ws-client.js'

t.test('no site is open before its first request, and reads open exactly one', async (t) => {
  const farm = await startFarm(t, { farm: true, idleSeconds: 60 })
  for (let i = 0; i < 20; i++) mkdirSync(join(farm.data, `s${i}.example`, 'pages'), { recursive: true })
  t.equal(farm.kernel.sites.openCount, 0, 'nothing open at boot, whatever is on disk')
  const response = await farm.app.inject({ url: '/welcome-visitors.json', headers: { host: 's3.example' } })
  t.equal(response.statusCode, 200)
  t.same(farm.kernel.sites.openSites(), ['s3.example'], 'only the visited site is open')
})

t.test('idle sites are closed, busy ones stay, and a closed site reopens intact', async (t) => {
  const farm = await startFarm(t, { farm: true, idleSeconds: 60 })
  const { cookie } = await claim(t, farm.app, 'a.example')
  const create = await putAction(farm.app, 'a.example', cookie, 'kept', {
    type: 'create', id: '0123456789abcdef', item: { title: 'Kept', story: [] }, date: 1,
  })
  t.equal(create.statusCode, 200)
  await farm.app.inject({ url: '/welcome-visitors.json', headers: { host: 'b.example' } })
  t.equal(farm.kernel.sites.openCount, 2)

  // b.example is touched again "later"; a.example has been idle past the limit.
  const later = Date.now() + 61_000
  farm.kernel.sites.open('b.example').lastUsed = later
  t.equal(await farm.kernel.sites.evictIdle(later), 1, 'one site closed')
  t.same(farm.kernel.sites.openSites(), ['b.example'], 'the busy site stays open')

  const reread = await farm.app.inject({ url: '/kept.json', headers: { host: 'a.example' } })
  t.equal(reread.statusCode, 200, 'the closed site reopens on its next request')
  t.equal(reread.json().title, 'Kept')
  const sitemap = await farm.app.inject({ url: '/system/sitemap.json', headers: { host: 'a.example' } })
  t.same(sitemap.json().map((e: { slug: string }) => e.slug), ['kept'], 'its sitemap was saved before it closed')
  const session = await farm.app.inject({ url: '/system/session.json', headers: { host: 'a.example', cookie } })
  t.equal(session.json().isOwner, true, 'its owner is still its owner')
})

t.test('a site with a write in flight is not closed under it', async (t) => {
  const farm = await startFarm(t, { farm: true, idleSeconds: 60 })
  const { cookie } = await claim(t, farm.app, 'w.example')
  const writes = Array.from({ length: 10 }, (_, i) => putAction(farm.app, 'w.example', cookie, `p${i}`, {
    type: 'create', id: '0123456789abcdef', item: { title: `P${i}`, story: [] }, date: i + 1,
  }))
  const evicted = farm.kernel.sites.evictIdle(Date.now() + 61_000)
  const results = await Promise.all(writes)
  await evicted
  t.ok(results.every((r) => r.statusCode === 200), 'every write answered 200')
  const slugs = await farm.app.inject({ url: '/system/slugs.json', headers: { host: 'w.example' } })
  t.equal(slugs.json().length, 10, 'every write is on disk')
  const sitemap = await farm.app.inject({ url: '/system/sitemap.json', headers: { host: 'w.example' } })
  t.equal(sitemap.json().length, 10, 'and in the sitemap')
})

t.test('with idleSeconds 0 sites are never closed', async (t) => {
  const farm = await startFarm(t, { farm: true, idleSeconds: 0 })
  await farm.app.inject({ url: '/welcome-visitors.json', headers: { host: 'n.example' } })
  t.equal(farm.kernel.sites.openCount, 1)
})

t.test('a site with open websocket connections stays open, however long since its last request', async (t) => {
  const farm = await startFarm(t, { farm: true, idleSeconds: 60 }, undefined,
    { builtinPluginsDir: fileURLToPath(new URL('./fixtures/plugins/', import.meta.url)) })
  const port = await listenLocal(farm)
  const client = await openWs(port, '/plugin/echo', 'live.example')
  t.equal((await client.nextJson()).type, 'hello')
  await farm.app.inject({ url: '/welcome-visitors.json', headers: { host: 'quiet.example' } })
  t.equal(await farm.kernel.sites.evictIdle(Date.now() + 61_000), 1, 'only the site without connections closes')
  t.same(farm.kernel.sites.openSites(), ['live.example'])
  client.ws.close()
  await client.closed
  t.equal(
    await farm.kernel.sites.evictIdle(Date.now() + 61_000),
    1,
    'once its last connection closes, it can close too',
  )
})

t.test("a plugin's site handle follows the site through eviction and reopening", async (t) => {
  const farm = await startFarm(t, { farm: true, idleSeconds: 60 }, undefined,
    { builtinPluginsDir: fileURLToPath(new URL('./fixtures/plugins/', import.meta.url)) })
  const { cookie } = await claim(t, farm.app, 'h.example')
  const before = await farm.app.inject({ url: '/plugin/echo/page/welcome-visitors', headers: { host: 'h.example' } })
  t.equal(before.statusCode, 200)
  await farm.kernel.sites.evictIdle(Date.now() + 61_000)
  t.equal(farm.kernel.sites.openCount, 0)
  const create = await putAction(farm.app, 'h.example', cookie, 'after', {
    type: 'create', id: '0123456789abcdef', item: { title: 'After', story: [] }, date: 1,
  })
  t.equal(create.statusCode, 200)
  const seen = await farm.app.inject({ url: '/plugin/echo/page/after', headers: { host: 'h.example' } })
  t.same(seen.json(), { title: 'After' }, 'the plugin reads the page written after the site reopened')
  t.equal(farm.kernel.sites.openCount, 1, 'one open Site for the folder, not two')
})
