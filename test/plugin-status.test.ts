// The operator's view: /system/status.json and /system/status.html show the administrator
// each plugin's state, reason and launch time, the open sites, and websocket connections
// per plugin and site; everyone else gets 403.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { claim, listenLocal, startFarm } from './fixtures/test-farm.js'
import { openWs } from './fixtures/ws-client.js'
import { ADMIN_SECRET, adminLogin } from './fixtures/admin.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins/', import.meta.url))
const A = 'a.example'
const B = 'b.example'

interface Status {
  plugins: {
    name: string
    state: string
    reason: string | null
    launchedAt: string | null
    trust: string | null
    connections: Record<string, number>
  }[]
  sites: { open: string[] }
  connections: { total: number; byPlugin: Record<string, Record<string, number>> }
  uptimeSeconds: number
}

t.test('status for the administrator: plugins, sites, connections per plugin and site', async (t) => {
  const before = Date.now()
  const farm = await startFarm(t, { farm: true, admin: ADMIN_SECRET }, undefined, { builtinPluginsDir: PLUGINS })
  const port = await listenLocal(farm)
  const admin = await adminLogin(t, farm, A)
  const clients = await Promise.all([
    openWs(port, '/plugin/echo/', A), openWs(port, '/plugin/echo/', A), openWs(port, '/plugin/echo/', B),
    openWs(port, '/plugin/echo/text', B),
  ])
  await Promise.all(clients.slice(0, 3).map((c) => c.next()))
  const closedUnavailable = await openWs(port, '/plugin/unavailable/', A)
  t.equal((await closedUnavailable.waitClose()).code, 1013)

  const response = await farm.app.inject({ url: '/system/status.json', headers: { host: A, cookie: admin } })
  t.equal(response.statusCode, 200)
  const status = response.json() as Status
  const echo = status.plugins.find((p) => p.name === 'echo')
  const unavailable = status.plugins.find((p) => p.name === 'unavailable')
  t.match(echo, { state: 'running', reason: null, trust: 'site', connections: { [A]: 2, [B]: 2 } })
  const launchedAt = Date.parse(echo?.launchedAt ?? '')
  t.ok(launchedAt >= before - 1000 && launchedAt <= Date.now(), 'with its launch time')
  t.match(unavailable, {
    state: 'unavailable',
    reason: 'no test device attached',
    launchedAt: null,
    trust: 'farm',
    connections: {},
  })
  t.same(status.connections, { total: 4, byPlugin: { echo: { [A]: 2, [B]: 2 } } })
  t.same(status.sites.open.sort(), [A, B])
  t.type(status.uptimeSeconds, 'number')

  const html = await farm.app.inject({ url: '/system/status.html', headers: { host: A, cookie: admin } })
  t.equal(html.statusCode, 200)
  t.match(html.headers['content-type'], /^text\/html/)
  const row = (name: string) => html.body.split('<tr>').find((r) => r.startsWith(`<td>${name}</td>`)) ?? ''
  t.match(row('echo'), /class="running">running</)
  t.match(row('echo'), new RegExp(echo?.launchedAt ?? 'never'), 'the launch time')
  t.match(row('echo'), `<td>4 (${A}: 2, ${B}: 2)</td>`, 'connections in all, and per site')
  t.match(row('unavailable'), /class="unavailable">unavailable</)
  t.match(row('unavailable'), /no test device attached/, 'the reason')
  t.match(html.body, new RegExp(`<li>${A}</li>`), 'open sites')

  for (const c of clients) c.ws.close()
  await Promise.all(clients.map((c) => c.waitClose()))
})

t.test('the status page escapes what it shows', async (t) => {
  const farm = await startFarm(t, { farm: true, admin: ADMIN_SECRET }, undefined, { builtinPluginsDir: PLUGINS })
  const admin = await adminLogin(t, farm, A)
  const record = farm.kernel.plugins.get('unavailable')
  if (record) record.reason = '<script>alert(1)</script>'
  const html = await farm.app.inject({ url: '/system/status.html', headers: { host: A, cookie: admin } })
  t.notMatch(html.body, /<script>/)
  t.match(html.body, /(&lt;|&#60;)script(&gt;|&#62;)alert/, 'shown as text')
})

t.test('everyone but the administrator gets 403', async (t) => {
  const farm = await startFarm(t, { farm: true, admin: ADMIN_SECRET }, undefined, { builtinPluginsDir: PLUGINS })
  const owner = await claim(t, farm.app, A)
  const adminElsewhere = await adminLogin(t, farm, B)
  for (const url of ['/system/status.json', '/system/status.html']) {
    for (const [who, cookie] of [
      ['a visitor', undefined],
      ['the site owner', owner.cookie],
      ['the admin of another site', adminElsewhere],
    ] as const) {
      const response = await farm.app.inject({ url, headers: { host: A, ...(cookie ? { cookie } : {}) } })
      t.equal(response.statusCode, 403, `${url} for ${who}`)
      if (url.endsWith('.json')) t.equal(response.json().code, 'WIKIFARM_ERR_NOT_ADMIN')
      else t.match(response.body, /<form id="admin-login">/, 'the page offers the administrator\'s login instead')
      t.notMatch(response.body, /echo|unavailable/, 'and nothing about the plugins')
    }
  }
  const noAdmin = await startFarm(t, { farm: true }, undefined, { builtinPluginsDir: PLUGINS })
  const owned = await claim(t, noAdmin.app, A)
  t.equal(
    (await noAdmin.app.inject({ url: '/system/status.json', headers: { host: A, cookie: owned.cookie } })).statusCode,
    403,
    'a farm with no administrator shows it to no one',
  )
})

t.test('the status page shows how each plugin runs, and links the guides it serves', async (t) => {
  const isolated = fileURLToPath(new URL('./fixtures/plugins-isolation/', import.meta.url))
  // Only steady of the isolation fixtures: the others crash, hog or spin on purpose.
  const others = Object.fromEntries(
    ['bomb', 'flaky', 'hog', 'rogue', 'snoop', 'spinner'].map((n) => [n, { enabled: false }]),
  )
  const farm = await startFarm(
    t,
    { farm: true, admin: ADMIN_SECRET, plugins: { ...others, steady: { isolation: 'process' } } },
    undefined,
    { builtinPluginsDir: isolated },
  )
  const admin = await adminLogin(t, farm, A)
  const steady = farm.kernel.plugins.statuses().find((p) => p.name === 'steady')
  t.match(steady, { state: 'running', isolation: 'process', pid: Number })
  const html = await farm.app.inject({ url: '/system/status.html', headers: { host: A, cookie: admin } })
  const row = html.body.split('<tr>').find((r) => r.startsWith('<td>steady</td>')) ?? ''
  t.match(row, `<td>process, pid ${steady?.pid}</td>`, 'isolation and pid')
  t.match(row, /<td>1<\/td><td>0<\/td>/, 'launches and restarts')
  t.match(html.body, /<th>isolation<\/th>.*<th>restarts<\/th>/s)
  t.match(html.body, '<a href="/system/docs/operators.md">operator guide</a>')

  const guide = await farm.app.inject({ url: '/system/docs/operators.md', headers: { host: A } })
  t.equal(guide.statusCode, 200)
  t.match(guide.headers['content-type'], /^text\/markdown/)
  t.match(guide.body, /^# /, 'the operator guide itself')
  for (const url of ['/system/docs/nothing.md', '/system/docs/..%2fpackage.md', '/system/docs/%2e%2e.md']) {
    const refused = await farm.app.inject({ url, headers: { host: A } })
    t.equal(refused.statusCode, 404, `${url}: only the guides are served`)
  }
})
