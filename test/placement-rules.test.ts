// The rules of plugin placement, without devices: the declaration (SDK and an isolated
// plugin's description), the operator's override and node settings (config, with did-you-mean),
// a farm of one node (everything runs here), two in-process kernels on one PostgreSQL store
// where the operator made a plugin one-node (launched once, forwarded with the visitor's own
// session), and the forwarding signature (forged, replayed on another request, another secret).
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { parseCli } from '../core/boot/cli.js'
import { describedPlugin, sameDescription } from '../core/plugin-host/description.js'
import { definePlugin } from '../core/plugin-api.js'
import { Forwarder, FORWARDED_HEADER } from '../core/cluster/forwarding.js'
import { COOKIE_SECRET, claim, http, startFarm } from './fixtures/test-farm.js'
import { startPostgres } from './fixtures/postgres.js'
import { launches } from './fixtures/plugins/echo/index.js'

const FIXTURES = fileURLToPath(new URL('./fixtures/plugins/', import.meta.url))
const HOST = 'a.example'

function refusal(argv: string[], plugins?: string): string {
  try {
    parseCli(argv, plugins ? { WIKIFARM_PLUGINS: plugins } : {})
  } catch (err) {
    return (err as Error).message
  }
  throw new Error(`${argv.join(' ')} was accepted`)
}

t.test('a plugin declares its placement; old plugins are every-node', async (t) => {
  const old = definePlugin({ name: 'old', trust: 'site', launch: async () => ({}) })
  t.equal(old.placement, undefined, 'a plugin written before the field has none (every-node)')
  const good = { name: 'x', apiVersion: 1, trust: 'site' }
  t.same(describedPlugin({ ...good, placement: 'one-node' }), { ...good, placement: 'one-node' })
  t.throws(() => describedPlugin({ ...good, placement: 'some-nodes' }), /placement must be every-node or one-node/)
  t.ok(sameDescription(describedPlugin(good), describedPlugin({ ...good, placement: 'every-node' })),
    'every-node is the default')
  t.notOk(sameDescription(describedPlugin(good), describedPlugin({ ...good, placement: 'one-node' })),
    'a plugin that changed its placement since the farm started is a changed definition')
})

t.test('the operator overrides placement in the grant; node settings', async (t) => {
  const parsed = parseCli(['--nodeUrl', 'http://10.0.0.5:3000/', '--no-pluginForwarding'],
    { WIKIFARM_PLUGINS: '{"txtzyme":{"placement":"every-node"}}' })
  if (!('config' in parsed)) throw new Error('no config')
  t.same(parsed.config.plugins.txtzyme, { placement: 'every-node' })
  t.equal(parsed.config.nodeUrl, 'http://10.0.0.5:3000')
  t.equal(parsed.config.pluginForwarding, false)
  const defaults = parseCli([], {})
  if (!('config' in defaults)) throw new Error('no config')
  t.equal(defaults.config.nodeUrl, null)
  t.equal(defaults.config.pluginForwarding, true)
  t.match(refusal([], '{"txtzyme":{"placment":"one-node"}}'), /unknown key; did you mean "placement"\?/)
  t.match(refusal([], '{"txtzyme":{"placement":"one"}}'), /must be "every-node" or "one-node"/)
  t.match(refusal(['--nodeUrl', 'http://10.0.0.5:3000/wiki']), /no path, query or credentials/)
  t.match(refusal(['--nodeUrl', 'ftp://10.0.0.5']), /http:\/\/ or https:\/\//)
  t.match(refusal(['--nodeUrl', 'http://user:pw@10.0.0.5']), /no path, query or credentials/)
})

t.test('one node (the file store): a one-node plugin simply runs here', async (t) => {
  const farm = await startFarm(t, { farm: true, plugins: { echo: { placement: 'one-node' } } }, undefined,
    { builtinPluginsDir: FIXTURES })
  t.equal(farm.kernel.placement, null, 'no election without the PostgreSQL store')
  t.match(farm.kernel.plugins.get('echo')?.status(), { state: 'running', placement: 'one-node' })
  const res = await farm.app.inject({ method: 'GET', url: '/plugin/echo/whoami', headers: { host: HOST } })
  t.equal(res.statusCode, 200)
})

t.test('forwarding signatures: forged, replayed elsewhere, old, or another farm\'s are refused', async (t) => {
  const farm = await startFarm(t, { farm: true }, undefined, { builtinPluginsDir: FIXTURES })
  const node = { id: 'n1', url: 'http://127.0.0.1:1' }
  const limits = { maxPayload: 1, sendBufferBytes: 1, timeoutMs: 1 }
  const ours = new Forwarder({ secret: COOKIE_SECRET, node: () => node, ...limits })
  const theirs = new Forwarder({ secret: 'another-farm', node: () => node, ...limits })
  const get = (url: string, header: string) => farm.app.inject({ method: 'GET', url,
    headers: { host: HOST, [FORWARDED_HEADER]: header } })
  t.equal((await get('/plugin/echo/whoami', ours.header('GET', HOST, '/plugin/echo/whoami'))).statusCode, 200,
    'a node\'s signature is served')
  const cases: [string, string][] = [
    ['no signature', 'n1'],
    ['garbage', ';;;'],
    ['a guessed signature', `n1;${Date.now()};${'A'.repeat(43)}`],
    ['another request\'s signature', ours.header('GET', HOST, '/plugin/echo/heard')],
    ['another host\'s signature', ours.header('GET', 'b.example', '/plugin/echo/whoami')],
    ['another method\'s signature', ours.header('POST', HOST, '/plugin/echo/whoami')],
    ['another farm\'s signature', theirs.header('GET', HOST, '/plugin/echo/whoami')],
    ['an old signature',
      ours.header('GET', HOST, '/plugin/echo/whoami').replace(/;\d+;/, `;${Date.now() - 120_000};`)],
  ]
  for (const [what, header] of cases) {
    const res = await get('/plugin/echo/whoami', header)
    t.equal(res.statusCode, 403, what)
    t.equal(res.json().code, 'WIKIFARM_ERR_FORGED_FORWARD', `${what}: coded`)
  }
})

t.test('a node\'s forwarded requests are not counted against the node\'s one address', async (t) => {
  const farm = await startFarm(t, { farm: true, readRate: 2 }, undefined, { builtinPluginsDir: FIXTURES })
  const node = { id: 'n1', url: 'http://127.0.0.1:1' }
  const ours = new Forwarder({ secret: COOKIE_SECRET, node: () => node, maxPayload: 1, sendBufferBytes: 1,
    timeoutMs: 1 })
  const url = '/plugin/echo/whoami'
  for (let i = 0; i < 5; i++) {
    const res = await farm.app.inject({ method: 'GET', url,
      headers: { host: HOST, [FORWARDED_HEADER]: ours.header('GET', HOST, url) } })
    t.equal(res.statusCode, 200, `forwarded read ${i + 1}: the forwarding node applied the limit`)
  }
  const statuses = []
  for (let i = 0; i < 3; i++) {
    statuses.push((await farm.app.inject({ method: 'GET', url, headers: { host: HOST } })).statusCode)
  }
  t.same(statuses, [200, 200, 429], 'a direct client is limited as before')
  const forged = await farm.app.inject({ method: 'GET', url, headers: { host: HOST, [FORWARDED_HEADER]: 'n1;1;x' } })
  t.equal(forged.statusCode, 429, 'a forged header buys no exemption')
})

t.test('two nodes on one store: the operator\'s one-node echo runs once, and forwards the visitor\'s session',
  async (t) => {
    const pg = await startPostgres(t)
    if (!pg) return
    const store = await pg.createDatabase('placement_rules')
    const before = launches.count
    const grant = { plugins: { echo: { placement: 'one-node' as const } }, farm: true, store }
    const first = await startFarm(t, { ...grant, host: '127.0.0.1', port: 0 }, undefined,
      { builtinPluginsDir: FIXTURES })
    const firstPort = new URL(await first.kernel.listen()).port
    const second = await startFarm(t, { ...grant, host: '127.0.0.1', port: 0 }, undefined,
      { builtinPluginsDir: FIXTURES })
    const secondPort = Number(new URL(await second.kernel.listen()).port)
    t.equal(launches.count - before, 1, 'launched once for the two nodes')
    t.match(first.kernel.plugins.get('echo')?.status(), { state: 'running' })
    t.match(second.kernel.plugins.get('echo')?.status(), { state: 'standby', reason: `runs on node 127.0.0.1:` })
    await new Promise((resolve) => setTimeout(resolve, 1200))
    t.match(second.kernel.plugins.get('echo')?.status(), { reason: `runs on node 127.0.0.1:${firstPort}` },
      'the standby reason names the owner once it listens')
    // The site's owner, through the second node: the first resolves the same session from the cookie.
    const owner = await claim(t, second.app, HOST)
    const res = await http(secondPort, 'GET', '/plugin/echo/whoami', HOST, { headers: { cookie: owner.cookie } })
    t.equal(res.status, 200)
    t.match(JSON.parse(res.body), { site: HOST, isOwner: true })
    const visitor = await http(secondPort, 'GET', '/plugin/echo/whoami', HOST)
    t.match(JSON.parse(visitor.body), { isOwner: false }, 'a visitor stays a visitor')
    const sum = await http(secondPort, 'POST', '/plugin/echo/sum', HOST,
      { headers: { 'content-type': 'application/json', origin: `http://${HOST}` }, body: '{"a":2,"b":3}' })
    t.same(JSON.parse(sum.body), { sum: 5 })
  })
