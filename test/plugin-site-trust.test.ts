// Site trust: a `site` plugin's context is bound to the request's site. It cannot open a
// site outside its grant, cannot write outside its site's folder, is 404 on sites it is not
// enabled for (REST and websocket upgrade), and hears only its sites' events. A `farm`
// plugin, for contrast, reaches every site and hears every event.
import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { claim, listDir, listenLocal, putAction, startFarm } from './fixtures/test-farm.js'
import { eventually, openWs, refusedUpgrade } from './fixtures/ws-client.js'
import { probe, resetProbe } from './fixtures/plugin-probe.js'
import type { FarmConfig } from '../core/farm-config.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-trust/', import.meta.url))
const A = 'a.example'
const B = 'b.example'

async function trustFarm(t: Test, plugins: FarmConfig['plugins']) {
  resetProbe()
  return startFarm(t, { farm: true, plugins }, undefined, { builtinPluginsDir: PLUGINS })
}

type Farm = Awaited<ReturnType<typeof trustFarm>>

async function get(farm: Farm, host: string, url: string) {
  return farm.app.inject({ url, headers: { host } })
}

const create = (title: string) => ({ type: 'create', item: { title }, date: 1 })

t.test('a site plugin sees only the request\'s site and cannot open another', async (t) => {
  const farm = await trustFarm(t, { reader: { sites: [A] } })
  const owner = await claim(t, farm.app, B)
  t.equal((await putAction(farm.app, B, owner.cookie, 'secret-b', create('Secret of b'))).statusCode, 200)

  const ctx = await get(farm, A, '/plugin/reader/ctx')
  t.equal(ctx.statusCode, 200)
  t.equal(ctx.json().site, A, 'ctx.site is the request\'s site')
  t.notOk((ctx.json().slugs as string[]).includes('secret-b'), 'and lists only its pages')

  const own = (await get(farm, A, `/plugin/reader/read?site=${A}&slug=welcome-visitors`)).json()
  t.same(own, { ok: true, site: A, title: 'Welcome Visitors' }, 'kernel.site() on its own site works')
  for (const other of [B, 'www.b.example', 'B.EXAMPLE', 'c.example', '../b.example', '']) {
    const refused = (await get(farm, A, `/plugin/reader/read?site=${encodeURIComponent(other)}&slug=secret-b`)).json()
    t.same(
      refused,
      { ok: false, code: 'WIKIFARM_ERR_PLUGIN_NOT_ENABLED' },
      `kernel.site(${JSON.stringify(other)}) is refused`,
    )
  }
  t.same((await get(farm, A, '/plugin/reader/sites')).json(), { sites: [A] }, 'kernel.sites() lists only granted sites')
})

t.test('granting a second site lets a site plugin open it; farm trust opens any site', async (t) => {
  const farm = await trustFarm(t, { reader: { sites: [A, B] } })
  const owner = await claim(t, farm.app, B)
  await putAction(farm.app, B, owner.cookie, 'secret-b', create('Secret of b'))
  t.same((await get(farm, A, `/plugin/reader/read?site=${B}&slug=secret-b`)).json(), {
    ok: true,
    site: B,
    title: 'Secret of b',
  })
  t.same((await get(farm, A, '/plugin/reader/read?site=c.example&slug=secret-b')).json(), {
    ok: false,
    code: 'WIKIFARM_ERR_PLUGIN_NOT_ENABLED',
  })
  for (const name of [B, 'www.b.example', 'B.Example']) {
    t.same((await get(farm, A, `/plugin/watcher/read?site=${encodeURIComponent(name)}&slug=secret-b`)).json(),
      { ok: true, site: B, title: 'Secret of b' }, `a farm plugin opens ${name} as ${B}`)
  }
  t.same(
    (await get(farm, A, '/plugin/watcher/read?site=..%2Fescape&slug=x')).json().ok,
    false,
    'but never a path outside the farm',
  )
  t.same(await listDir(farm.data), [B], 'and opening sites created no folders')
})

t.test('a site plugin writes only its own site\'s pages', async (t) => {
  const farm = await trustFarm(t, { reader: { sites: [A] } })
  const write = (slug: string) => farm.app.inject({
    method: 'POST', url: '/plugin/reader/write', headers: { host: A, 'content-type': 'application/json' },
    payload: JSON.stringify({ slug, title: 'Planted' }),
  })
  t.same((await write('planted')).json(), { ok: true, title: 'Planted' })
  t.same(await listDir(join(farm.data, A, 'pages')), ['planted'])
  for (const slug of ['../../b.example/pages/planted', '../status/owner.json', 'UPPER', '']) {
    t.same(
      (await write(slug)).json(),
      { ok: false, code: 'WIKIFARM_ERR_BAD_SLUG' },
      `slug ${JSON.stringify(slug)} refused`,
    )
  }
  t.same(await listDir(farm.data), [A], 'nothing written beside its site')
  t.same(await listDir(join(farm.data, A, 'pages')), ['planted'], 'nor another page of its site')
  t.notOk((await listDir(join(farm.data, A, 'status'))).includes('owner.json'), 'nor its status files')
})

t.test('a site plugin is 404 on sites it is not enabled for, REST and websocket alike', async (t) => {
  const farm = await trustFarm(t, { reader: { sites: [A] } })
  const port = await listenLocal(farm)
  const rest = await get(farm, B, '/plugin/reader/ctx')
  t.equal(rest.statusCode, 404)
  t.equal(rest.json().code, 'WIKIFARM_ERR_PLUGIN_NOT_ENABLED')
  const upgrade = await refusedUpgrade(port, '/plugin/reader/', B)
  t.equal(upgrade.status, 404, 'the upgrade is refused before it happens')
  t.match(JSON.parse(upgrade.body), { code: 'WIKIFARM_ERR_PLUGIN_NOT_ENABLED' })
  const client = await openWs(port, '/plugin/reader/', A)
  t.equal(await client.next(), A, 'and served on its own site')
  client.ws.close()
  await client.waitClose()
})

t.test('a site plugin hears only its sites\' events; a farm plugin hears all', async (t) => {
  const farm = await trustFarm(t, { reader: { sites: [A] } })
  const port = await listenLocal(farm)
  const ownerA = await claim(t, farm.app, A)
  const ownerB = await claim(t, farm.app, B)
  t.equal((await putAction(farm.app, A, ownerA.cookie, 'page-a', create('Page a'))).statusCode, 200)
  t.equal((await putAction(farm.app, B, ownerB.cookie, 'page-b', create('Page b'))).statusCode, 200)
  t.equal(
    (
      await putAction(farm.app, B, ownerB.cookie, 'page-b', {
        type: 'add',
        id: '00000000000000b1',
        item: { type: 'paragraph', id: '00000000000000b1', text: 'x' },
      })
    ).statusCode,
    200,
  )
  const del = await farm.app.inject({
    method: 'DELETE',
    url: '/page-b.json',
    headers: { host: B, cookie: ownerB.cookie },
  })
  t.equal(del.statusCode, 200, 'page-b deleted')
  // Connections are events of the site they are on.
  for (const [path, host] of [['/plugin/watcher/', B], ['/plugin/reader/', A]] as const) {
    const client = await openWs(port, path, host)
    t.equal(await client.next(), host)
    client.ws.close()
    await client.waitClose()
  }
  await eventually(() => (probe.heard.watcher ?? []).includes(`connection.closed:${A}:reader`))

  t.same(probe.heard.reader, [
    `site.opened:${A}`, `site.claimed:${A}`, `site.created:${A}`, `page.changed:${A}/page-a`,
    `connection.opened:${A}:reader`, `connection.closed:${A}:reader`,
  ], 'reader heard a\'s events only')
  t.same(
    probe.heard.watcher,
    [
      `site.opened:${A}`,
      `site.claimed:${A}`,
      `site.opened:${B}`,
      `site.claimed:${B}`,
      `site.created:${A}`,
      `page.changed:${A}/page-a`,
      `site.created:${B}`,
      `page.changed:${B}/page-b`,
      `page.changed:${B}/page-b`,
      `page.deleted:${B}/page-b`,
      `connection.opened:${B}:watcher`,
      `connection.closed:${B}:watcher`,
      `connection.opened:${A}:reader`,
      `connection.closed:${A}:reader`,
    ],
    "watcher heard both sites' events",
  )
})
