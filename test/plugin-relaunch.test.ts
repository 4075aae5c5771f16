// Coming back: a plugin unavailable with a retry interval relaunches by itself once the
// condition clears; the administrator can relaunch a failed or running plugin (its open
// sockets close with 1012 first); nobody else can.
import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { claim, listenLocal, startFarm } from './fixtures/test-farm.js'
import { eventually, openWs } from './fixtures/ws-client.js'
import { probe, resetProbe } from './fixtures/plugin-probe.js'
import { ADMIN_SECRET, adminLogin } from './fixtures/admin.js'
import type { FarmConfig } from '../core/farm-config.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-relaunch/', import.meta.url))
const VENDORED = fileURLToPath(new URL('./fixtures/plugin-packages/vendored.js', import.meta.url))
const HOST = 'a.example'

async function relaunchFarm(t: Test, flags: Record<string, boolean> = {}, plugins: FarmConfig['plugins'] = {}) {
  resetProbe()
  Object.assign(probe.flags, flags)
  return startFarm(t, { farm: true, admin: ADMIN_SECRET, plugins }, undefined, { builtinPluginsDir: PLUGINS })
}

type Farm = Awaited<ReturnType<typeof relaunchFarm>>

const state = (farm: Farm, name: string) => farm.kernel.plugins.statuses().find((s) => s.name === name)
const get = (farm: Farm, url: string) => farm.app.inject({ url, headers: { host: HOST } })
const relaunch = (farm: Farm, name: string, cookie?: string, headers: Record<string, string> = {}) =>
  farm.app.inject({
    method: 'POST',
    url: `/system/plugins/${name}/relaunch`,
    headers: { host: HOST, ...(cookie ? { cookie } : {}), ...headers },
  })

t.test('unavailable with retryAfterMs: the plugin comes back by itself when the device appears', async (t) => {
  const farm = await relaunchFarm(t)
  t.match(state(farm, 'flaky'), { state: 'unavailable', reason: 'no flaky device attached', nextRetryAt: String })
  t.equal((await get(farm, '/plugin/flaky/hello')).statusCode, 503)
  await eventually(() => probe.log.filter((l) => l === 'launch:flaky').length >= 2, 1000, 'a retry')
  t.equal(state(farm, 'flaky')?.state, 'unavailable', 'still unavailable while the device is absent')

  probe.flags.flakyPresent = true
  await eventually(async () => (await get(farm, '/plugin/flaky/hello')).statusCode === 200, 3000, 'flaky serves again')
  t.same((await get(farm, '/plugin/flaky/hello')).json(), { device: 'present' })
  t.match(state(farm, 'flaky'), { state: 'running', reason: null, nextRetryAt: null, launches: 1, launchedAt: String })
  const launches = probe.log.filter((l) => l === 'launch:flaky').length
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(probe.log.filter((l) => l === 'launch:flaky').length, launches, 'and is not launched again once running')
})

t.test('a failed plugin is not retried by itself', async (t) => {
  const farm = await relaunchFarm(t, { brokenFails: true })
  t.match(state(farm, 'broken'), { state: 'failed', reason: 'broken: bad configuration', nextRetryAt: null })
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(probe.log.filter((l) => l === 'launch:broken'), ['launch:broken'], 'launched once, at boot')
})

t.test('a plugin with its own copy of the plugin API is unavailable (not failed) and retried', async (t) => {
  // In the kernel's thread: it reports to the test through the shared probe.
  const farm = await relaunchFarm(t, {}, { vendored: { package: VENDORED, isolation: 'none' } })
  t.match(state(farm, 'vendored'), { state: 'unavailable', reason: 'no vendored device', nextRetryAt: String })
  probe.flags.vendoredPresent = true
  await eventually(() => state(farm, 'vendored')?.state === 'running', 3000, 'vendored runs')
  const teapot = await get(farm, '/plugin/vendored/teapot')
  t.equal(teapot.statusCode, 418, 'its PluginHttpError is understood too')
  t.same(teapot.json(), { error: 'short and stout', code: 'VENDORED_TEAPOT' })
})

t.test('only the administrator may relaunch', async (t) => {
  const farm = await relaunchFarm(t, { brokenFails: true })
  const owner = await claim(t, farm.app, HOST)
  for (const [who, cookie] of [['a visitor', undefined], ['the site owner', owner.cookie]] as const) {
    const response = await relaunch(farm, 'broken', cookie)
    t.equal(response.statusCode, 403, `${who} is refused`)
    t.equal(response.json().code, 'WIKIFARM_ERR_NOT_ADMIN')
  }
  const admin = await adminLogin(t, farm, 'b.example')
  t.equal(
    (
      await farm.app.inject({
        method: 'POST',
        url: '/system/plugins/broken/relaunch',
        headers: { host: HOST, cookie: admin },
      })
    ).statusCode,
    403,
    'an admin login on another site is not one here',
  )
  t.same(probe.log.filter((l) => l.endsWith(':broken')), ['launch:broken'], 'no refused request relaunched anything')
})

t.test('the administrator relaunches a failed plugin, then a running one, closing its sockets with 1012', async (t) => {
  const farm = await relaunchFarm(t, { brokenFails: true, flakyPresent: true })
  const admin = await adminLogin(t, farm, HOST)

  const stillBroken = await relaunch(farm, 'broken', admin)
  t.equal(stillBroken.statusCode, 200)
  t.match(
    stillBroken.json(),
    { name: 'broken', state: 'failed', reason: 'broken: bad configuration' },
    'a relaunch that fails again says why',
  )

  probe.flags.brokenFails = false
  const fixed = await relaunch(farm, 'broken', admin)
  t.match(fixed.json(), { name: 'broken', state: 'running', reason: null, launches: 1, launchedAt: String })
  t.same((await get(farm, '/plugin/broken/hello')).json(), { generation: 1 }, 'it serves')

  const port = await listenLocal(farm)
  const mine = await openWs(port, '/plugin/broken/', HOST)
  t.equal(await mine.next(), 'generation 1')
  const bystander = await openWs(port, '/plugin/steady/', HOST)
  t.match(await bystander.nextJson(), { plugin: 'steady', site: HOST })

  const again = await relaunch(farm, 'broken', admin)
  t.match(again.json(), { state: 'running', launches: 2 })
  t.same(await mine.waitClose(), { code: 1012, reason: 'plugin restarting' }, 'its sockets are closed with 1012')
  t.ok(
    probe.log.indexOf('close:broken') > 0 && probe.log.indexOf('close:broken') < probe.log.lastIndexOf('launch:broken'),
    'the old instance is closed before the new one launches',
  )
  t.ok(
    probe.log.indexOf('socket-closed:broken:1012') >= 0 &&
      probe.log.indexOf('socket-closed:broken:1012') < probe.log.indexOf('close:broken'),
    'after its connections have closed',
    { log: probe.log },
  )
  t.same((await get(farm, '/plugin/broken/hello')).json(), { generation: 2 }, 'the new instance serves REST')
  const next = await openWs(port, '/plugin/broken/', HOST)
  t.equal(await next.next(), 'generation 2', 'and websockets')

  bystander.send('still there?')
  t.equal(await bystander.next(), 'steady:still there?', 'another plugin\'s socket is untouched')
  t.equal(state(farm, 'steady')?.launches, 1, 'and that plugin was not relaunched')

  const unknown = await relaunch(farm, 'nosuch', admin)
  t.equal(unknown.statusCode, 404)
  t.equal(unknown.json().code, 'WIKIFARM_ERR_PLUGIN_NOT_ENABLED')

  const fromForm = await relaunch(farm, 'steady', admin, { accept: 'text/html', origin: `http://${HOST}` })
  t.equal(fromForm.statusCode, 303, 'the status page\'s form is sent back to the status page')
  t.equal(fromForm.headers.location, '/system/status.html')
  t.equal(state(farm, 'steady')?.launches, 2)

  for (const c of [bystander, next]) c.ws.close()
  await Promise.all([bystander.waitClose(), next.waitClose()])
})

t.test('concurrent relaunches run one at a time', async (t) => {
  const farm = await relaunchFarm(t, { flakyPresent: true })
  const admin = await adminLogin(t, farm, HOST)
  probe.log = []
  const results = await Promise.all([1, 2, 3].map(() => relaunch(farm, 'broken', admin)))
  t.same(results.map((r) => r.json().state), ['running', 'running', 'running'])
  t.same(probe.log, ['close:broken', 'launch:broken', 'close:broken', 'launch:broken', 'close:broken', 'launch:broken'],
    'each relaunch closes the instance before launching the next')
  t.same((await get(farm, '/plugin/broken/hello')).json(), { generation: 4 })
})
