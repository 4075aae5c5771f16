// The 2016 websocket plugins, unchanged, from the registry: wiki-plugin-txtzyme 0.1.4 and
// wiki-plugin-linkmap 0.2.2 make `new WebSocketServer({server: params.server})`, and the kernel
// emits `upgrade` on that stand-in for their paths after its own checks. Txtzyme's server part,
// launched once, drives the simulator on a real pty for clients of two sites; linkmap runs one
// instance per site (its default mode), each sending its own site's map. wikifarm's built-in
// txtzyme and linkmap are left out (an empty built-in folder), so the legacy ones serve the paths.
import t, { type Test } from 'tap'
import { existsSync, mkdirSync, readdirSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { http, listenLocal, startFarm, type TestFarm } from './fixtures/test-farm.js'
import { ADMIN_SECRET, adminLogin } from './fixtures/admin.js'
import { eventually, openWs, refusedUpgrade, type WsClient } from './fixtures/ws-client.js'
import { needSocat, simulatedDevice } from './fixtures/txtzyme-device.js'
import { installFromRegistry } from './fixtures/registry-packages.js'
import type { LegacyStatus } from '../core/plugin-host/legacy/host.js'

const PACKAGES = join(import.meta.dirname, 'fixtures', 'legacy-packages')
const A = 'a.example'
const B = 'b.example'

async function legacyFarm(t: Test, nodeModules: string, overrides = {}): Promise<{ farm: TestFarm; port: number }> {
  const builtins = t.testdir({})
  const farm = await startFarm(t, { farm: true, admin: ADMIN_SECRET, ...overrides }, undefined,
    { legacyNodeModules: [nodeModules], builtinPluginsDir: builtins })
  return { farm, port: await listenLocal(farm) }
}

async function legacyStatus(t: Test, farm: TestFarm, name: string): Promise<LegacyStatus | undefined> {
  const admin = await adminLogin(t, farm, A)
  const status = await farm.app.inject({ url: '/system/status.json', headers: { host: A, cookie: admin } })
  return (status.json() as { legacy: LegacyStatus[] }).legacy.find((p) => p.name === name)
}

function page(title: string, links: string[]): string {
  const story = links.map((link, i) => ({ type: 'paragraph', id: `p${i}`, text: `see [[${link}]]` }))
  return JSON.stringify({ title, story, journal: [] })
}

function writePages(farm: TestFarm, site: string, pages: Record<string, string>): void {
  const dir = join(farm.data, site, 'pages')
  mkdirSync(dir, { recursive: true })
  for (const [slug, text] of Object.entries(pages)) writeFileSync(join(dir, slug), text)
}

t.test('linkmap 0.2.2, per site: each site gets its own map; one launch per site after 50 sites', async (t) => {
  const modules = await installFromRegistry(t, ['wiki-plugin-linkmap@0.2.2'])
  const { farm, port } = await legacyFarm(t, modules)
  t.match(await legacyStatus(t, farm, 'linkmap'), {
    state: 'running', mode: 'per-site', launches: 0, instances: 0, source: 'legacy wiki-plugin-linkmap@0.2.2',
  }, 'per-site by default; nothing started before a site asks')
  writePages(farm, A, { alpha: page('Alpha', ['Beta', 'Gamma Ray']), beta: page('Beta', ['Alpha']) })
  writePages(farm, B, { delta: page('Delta', ['Epsilon']) })

  // A site's instance builds its map at start, from that site's pages; an open socket gets it.
  const mapOf = async (host: string): Promise<Record<string, string[]>> => {
    let map: Record<string, string[]> = {}
    await eventually(async () => {
      const client = await openWs(port, '/plugin/linkmap', host)
      map = JSON.parse(await client.next()) as Record<string, string[]>
      client.ws.close()
      return Object.keys(map).length > 0
    }, 5000, `${host}'s map`)
    return map
  }
  t.same(await mapOf(A), { alpha: ['beta', 'gamma-ray'], beta: ['alpha'] }, "a.example's map")
  t.same(await mapOf(B), { delta: ['epsilon'] }, "b.example's map: its own, not a.example's")

  const foreign = await refusedUpgrade(port, '/plugin/linkmap', A, { origin: 'http://evil.example' })
  t.equal(foreign.status, 403, 'a foreign Origin is refused before the plugin sees the upgrade')
  t.equal((await refusedUpgrade(port, '/plugin/linkmap/other', A)).status, 400,
    "another path reaches the plugin's ws, which answers it as ws does")

  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 50; i++) {
      const response = await http(port, 'GET', '/plugin/linkmap/none', `site${i}.example`)
      t.equal(response.status, 404, `site ${i}: the instance has no such HTTP route`)
    }
  }
  t.match(await legacyStatus(t, farm, 'linkmap'), { launches: 52, instances: 52, websocket: true },
    'launched exactly once per site: 50 sites twice, and a and b')
  const admin = await adminLogin(t, farm, A)
  const html = await farm.app.inject({ url: '/system/status.html', headers: { host: A, cookie: admin } })
  t.match(html.body, /<td>linkmap<\/td>.*<td>legacy wiki-plugin-linkmap@0\.2\.2<\/td><td>per-site<\/td>.*<td>52<\/td><td>52<\/td><td>yes<\/td>/,
    'the status page shows its mode, launches, instances and websocket')
})

t.test('per-site instances are bounded: the least recently used one is dropped, then relaunched', async (t) => {
  const modules = await installFromRegistry(t, ['wiki-plugin-linkmap@0.2.2'])
  const builtins = t.testdir({})
  const farm = await startFarm(t, { farm: true, admin: ADMIN_SECRET }, undefined,
    { legacyNodeModules: [modules], builtinPluginsDir: builtins })
  const port = await listenLocal(farm)
  farm.kernel.legacy.setMaxInstances(3)
  for (const i of [0, 1, 2, 3, 0]) await http(port, 'GET', '/plugin/linkmap/x', `site${i}.example`)
  t.match(await legacyStatus(t, farm, 'linkmap'), { launches: 5, instances: 3 },
    'site0 was dropped for site3 and started again')
})

t.test('a websocket of a legacy plugin: the request\'s site in its handlers; a throw and an exit contained',
  async (t) => {
    const farm = await startFarm(t, { farm: true, admin: ADMIN_SECRET }, undefined, { legacyNodeModules: [PACKAGES] })
    const port = await listenLocal(farm)
    const a = await openWs(port, '/plugin/sockets', A)
    const b = await openWs(port, '/plugin/sockets', B)
    t.same(await a.nextJson(), { url: `http://${A}` }, 'argv answers for the site of the upgrade')
    t.same(await b.nextJson(), { url: `http://${B}` })
    a.send('hi')
    b.send('ho')
    t.same(await a.nextJson(), { url: `http://${A}`, echo: 'hi' }, 'and in its message handlers')
    t.same(await b.nextJson(), { url: `http://${B}`, echo: 'ho' })
    t.equal((await refusedUpgrade(port, '/plugin/probe/socket', A)).status, 404,
      'a plugin that attached no websocket server: refused before the handshake')
    t.equal((await refusedUpgrade(port, '/plugin/sockets', A, { origin: 'http://evil.example' })).status, 403)

    a.send('crash')
    await a.waitClose()
    t.match(await legacyStatus(t, farm, 'sockets'),
      { state: 'running', faults: 1, lastFault: 'thrown in a message handler' },
      'a throw in a message handler closes that socket and is counted')
    b.send('still')
    t.same(await b.nextJson(), { url: `http://${B}`, echo: 'still' }, 'other sockets carry on')
    b.send('exit')
    await b.waitClose()
    t.match(await legacyStatus(t, farm, 'sockets'), { state: 'failed', reason: 'called process.exit(5)' })
    t.equal((await refusedUpgrade(port, '/plugin/sockets', A)).status, 503, 'the plugin is stopped; the farm is not')
    t.equal((await http(port, 'GET', '/welcome-visitors.json', A)).status, 200)
  })

t.test('a legacy plugin\'s websockets end with the farm', async (t) => {
  const farm = await startFarm(t, { farm: true }, undefined, { legacyNodeModules: [PACKAGES] })
  const port = await listenLocal(farm)
  const client = await openWs(port, '/plugin/sockets', A)
  t.same(await client.nextJson(), { url: `http://${A}` })
  await farm.kernel.close()
  t.ok(await client.waitClose(), 'closed by the farm\'s close, which does not otherwise reach upgraded sockets')
})

t.test('txtzyme 0.1.4, launched once, drives the simulator on a real pty for clients on two sites', async (t) => {
  if (!(await needSocat(t))) return
  // The 2016 plugin looks for its device in /dev (a name starting ttyACM): a link there to the
  // simulator's pty. It takes the last one it lists, so another ttyACM* would be ambiguous.
  const others = readdirSync('/dev').filter((f) => f.startsWith('ttyACM'))
  if (others.length > 0 || process.getuid?.() !== 0) {
    const why = `needs root and no other /dev/ttyACM* (found: ${others.join(', ') || 'none'})`
    // CI runs as root on a machine without a Txtzyme: there it must run, never skip.
    if (process.env.WIKIFARM_REQUIRE_TOOLS) t.fail(why)
    else t.skip(why, async () => {})
    return
  }
  const modules = await installFromRegistry(t, ['wiki-plugin-txtzyme@0.1.4'])
  const device = await simulatedDevice(t, { speed: 50 })
  const link = `/dev/ttyACM-wikifarm-${process.pid}`
  symlinkSync(device.path, link)
  t.teardown(() => { if (existsSync(link)) unlinkSync(link) })
  const { farm, port } = await legacyFarm(t, modules)
  t.match(await legacyStatus(t, farm, 'txtzyme'), {
    state: 'running', mode: 'shared', launches: 1, websocket: true, source: 'legacy wiki-plugin-txtzyme@0.1.4',
  })

  const clients: WsClient[] = []
  for (const host of [A, B]) clients.push(await openWs(port, '/plugin/txtzyme', host))
  const [a, b] = clients as [WsClient, WsClient]
  const line = async (client: WsClient, want: string): Promise<void> => {
    await eventually(() => client.received.some((l) => l.trim() === want), 5000, `"${want}" on a client`)
  }
  a.send('_from-a_\n')
  await line(a, 'from-a')
  await line(b, 'from-a')
  b.send('21p\n')
  await line(a, '21')
  await line(b, '21')
  t.pass('each site\'s command ran on the device; both clients hear its lines, as the plugin shares one device')
  t.equal((await refusedUpgrade(port, '/plugin/txtzyme', A, { origin: 'http://evil.example' })).status, 403)
  for (let i = 0; i < 50; i++) await http(port, 'GET', '/plugin/txtzyme/x', `site${i}.example`)
  t.match(await legacyStatus(t, farm, 'txtzyme'), { launches: 1, instances: 1 }, 'still once after 50 sites')
  for (const client of clients) client.ws.close()
})
