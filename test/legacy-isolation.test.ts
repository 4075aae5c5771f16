// Legacy plugins in the legacy child (legacyIsolation "process", the default): the farm's own
// process never loads node:domain (so no async hooks cost its requests); the child is another
// process; a visitor cannot forge the facts the farm tells it; the child's death fails only the
// legacy requests in flight, and it is restarted while the farm serves on.
import t, { type Test } from 'tap'
import EventEmitter from 'node:events'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { INSTALLED_LEGACY, claim, http, listenLocal, startFarm, type TestFarm } from './fixtures/test-farm.js'
import { ADMIN_SECRET, adminLogin } from './fixtures/admin.js'
import { eventually, openWs } from './fixtures/ws-client.js'
import type { LegacyStatus } from '../core/plugin-host/legacy/host.js'

const PACKAGES = join(import.meta.dirname, 'fixtures', 'legacy-packages')
const A = 'a.example'
const FACTS = 'x-wikifarm-legacy-facts'

async function legacyStatus(t: Test, farm: TestFarm, name: string): Promise<LegacyStatus | undefined> {
  const admin = await adminLogin(t, farm, A)
  const status = await farm.app.inject({ url: '/system/status.json', headers: { host: A, cookie: admin } })
  return (status.json() as { legacy: LegacyStatus[] }).legacy.find((p) => p.name === name)
}

t.test('the plugins run in a child process; the farm\'s process never loads node:domain', async (t) => {
  const farm = await startFarm(t, { farm: true, admin: ADMIN_SECRET }, undefined, { legacyNodeModules: [PACKAGES] })
  const port = await listenLocal(farm)
  const probe = await legacyStatus(t, farm, 'probe')
  t.match(probe, { state: 'running', isolation: 'process', child: { state: 'running', restarts: 0 } })
  t.type(probe?.child?.pid, 'number')
  t.not(probe?.child?.pid, process.pid, 'another process')
  t.equal(JSON.parse((await http(port, 'GET', '/plugin/probe/argv', A)).body).url, `http://${A}`)
  t.equal((await http(port, 'GET', '/plugin/probe/crash-now', A)).status, 500, 'a throw is fenced in the child')
  const ws = await openWs(port, '/plugin/sockets', A)
  t.same(await ws.nextJson(), { url: `http://${A}` }, 'a websocket is piped to the child')
  ws.ws.close()
  // Loading node:domain marks every EventEmitter (usingDomains); its domains capture uncaught
  // exceptions. (process.domain is tap's own here: tap runs tests in async-hook-domains.)
  t.equal((EventEmitter as { usingDomains?: boolean }).usingDomains, false, 'node:domain was never loaded here')
  t.equal(process.hasUncaughtExceptionCaptureCallback(), false)
  const html = await farm.app.inject({
    url: '/system/status.html', headers: { host: A, cookie: await adminLogin(t, farm, A) },
  })
  t.match(html.body, `legacy child, pid ${String(probe?.child?.pid)}`, 'the status page shows the child')
})

t.test('a fresh farm, its data folder not made yet, starts the real assets and image plugins', async (t) => {
  // The permission model grants writes under the data folder, not the making of it; multer makes
  // the upload folders when assets and image start. Found by hand: `npm start` on a fresh clone.
  const data = join(t.testdir(), 'not-made-yet')
  const farm = await startFarm(t, { farm: true, admin: ADMIN_SECRET }, data, { legacyNodeModules: INSTALLED_LEGACY })
  for (const name of ['assets', 'image']) {
    t.match(await legacyStatus(t, farm, name), { state: 'running', isolation: 'process' }, `${name} runs`)
  }
  t.ok(existsSync(data), 'the data folder was made for them')
})

t.test('the child writes only inside the farm\'s data, and signals nothing', async (t) => {
  const farm = await startFarm(t, { farm: true }, undefined, { legacyNodeModules: [PACKAGES] })
  const port = await listenLocal(farm)
  const outside = join(farm.data, '..', 'outside-the-farm.txt')
  const response = await http(port, 'POST', '/plugin/probe/write-outside', A)
  t.same([response.status, response.body], [403, 'ERR_ACCESS_DENIED'], 'the permission model refuses it')
  t.notOk(existsSync(outside))
  const kill = await http(port, 'POST', '/plugin/probe/kill-parent', A)
  t.same([kill.status, kill.body], [403, 'ERR_ACCESS_DENIED'], 'process.kill is sealed in the child')
})

t.test('a visitor cannot claim the facts the farm tells the child', async (t) => {
  const farm = await startFarm(t, { farm: true, admin: ADMIN_SECRET }, undefined, { legacyNodeModules: [PACKAGES] })
  const port = await listenLocal(farm)
  await claim(t, farm.app, A)
  const forged = Buffer.from(JSON.stringify({
    token: 'guess', plugin: 'probe', site: A, root: '/', wikiDomain: null, authorized: true, admin: true, friend: 'x',
  })).toString('base64url')
  const session = await http(port, 'GET', '/plugin/probe/session', A, { headers: { [FACTS]: forged } })
  t.same(JSON.parse(session.body), { session: {}, authorized: false, admin: false }, 'the header is the farm\'s')
})

t.test('the child dying fails its requests in flight, is restarted, and the farm serves on', async (t) => {
  const config = { farm: true, admin: ADMIN_SECRET, pluginHandlerTimeoutMs: 5000 }
  const farm = await startFarm(t, config, undefined, { legacyNodeModules: [PACKAGES] })
  const port = await listenLocal(farm)
  const pid = (await legacyStatus(t, farm, 'probe'))?.child?.pid
  if (typeof pid !== 'number') throw new Error('no legacy child')
  const hanging = http(port, 'GET', '/plugin/probe/hang', A)
  await new Promise((resolve) => setTimeout(resolve, 200))
  process.kill(pid, 'SIGKILL')
  const failed = await hanging
  t.equal(failed.status, 503, 'the request in flight fails, coded')
  t.match(JSON.parse(failed.body), {
    code: 'WIKIFARM_ERR_PLUGIN_UNAVAILABLE', reason: /^the legacy child /,
  })
  t.equal((await http(port, 'GET', '/welcome-visitors.json', A)).status, 200, 'the farm serves on')
  await eventually(async () => (await http(port, 'GET', '/plugin/probe/argv', A)).status === 200, 10_000,
    'the restarted child serves')
  const after = await legacyStatus(t, farm, 'probe')
  t.match(after, { state: 'running', child: { state: 'running', restarts: 1, lastExit: 'killed by SIGKILL' } })
  t.not(after?.child?.pid, pid, 'a new child')
})

t.test('a child blocked by a busy loop is killed at the heartbeat deadline and restarted', async (t) => {
  const config = { farm: true, admin: ADMIN_SECRET, pluginHeartbeatTimeoutMs: 500, pluginHandlerTimeoutMs: 5000 }
  const farm = await startFarm(t, config, undefined, { legacyNodeModules: [PACKAGES] })
  const port = await listenLocal(farm)
  const spun = await http(port, 'GET', '/plugin/probe/spin', A)
  t.equal(spun.status, 503, 'the request that blocked it fails, coded')
  t.equal((await http(port, 'GET', '/welcome-visitors.json', A)).status, 200, 'the farm was never blocked')
  await eventually(async () => (await http(port, 'GET', '/plugin/probe/argv', A)).status === 200, 10_000,
    'the restarted child serves')
  t.match(await legacyStatus(t, farm, 'probe'), { child: { restarts: 1, lastExit: 'killed by SIGKILL' } })
})

// Last: in the farm's thread, the fence loads node:domain in this process.
t.test('legacyIsolation "none": the plugins run in the farm\'s thread, as before', async (t) => {
  const config = { farm: true, admin: ADMIN_SECRET, legacyIsolation: 'none' as const }
  const farm = await startFarm(t, config, undefined, { legacyNodeModules: [PACKAGES] })
  const port = await listenLocal(farm)
  t.match(await legacyStatus(t, farm, 'probe'), { state: 'running', isolation: 'none', launches: 1 })
  t.equal((await legacyStatus(t, farm, 'probe'))?.child, undefined)
  t.equal(JSON.parse((await http(port, 'GET', '/plugin/probe/argv', A)).body).url, `http://${A}`)
  t.equal((await http(port, 'GET', '/plugin/probe/crash-now', A)).status, 500, 'a throw is fenced here')
  await http(port, 'POST', '/plugin/probe/exit', A)
  t.match(await legacyStatus(t, farm, 'probe'), { state: 'failed', reason: 'called process.exit(0)' },
    'process.exit refused: the plugin stops, the farm does not')
  t.equal((await http(port, 'GET', '/welcome-visitors.json', A)).status, 200)
})
