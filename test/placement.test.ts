// Plugin placement on a farm of three real node processes sharing one real PostgreSQL store,
// with two Txtzyme simulators on real ptys: node A and node B each reach a device, node C
// reaches none and does not forward. Txtzyme runs on exactly one node; websocket clients on a
// non-owner drive the device through forwarding and get their own output; a forged forwarding
// header is refused; kill -9 of the owner hands the device to B within seconds; with no node
// left that reaches a device, C says why on its status.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startPostgres, query } from './fixtures/postgres.js'
import { simulatedDevice, needSocat } from './fixtures/txtzyme-device.js'
import { NO_LIMITS, http } from './fixtures/test-farm.js'
import { ADMIN_SECRET } from './fixtures/admin.js'
import { eventually as often, openWs, type WsClient } from './fixtures/ws-client.js'

interface Node { name: string; child: ChildProcess; port: number; admin: string }
interface Env { type: string; id?: string; data?: unknown }
interface PluginView {
  name: string; state: string; reason: string | null; placement: string
  placed: { placement: string; role: string; owner: { id: string; url: string } | null;
    attempts: { node: { id: string }; reason: string | null }[] }
}

const SITE = 'a.example'
const OTHER = 'b.example'

/** Polls every 50 ms: the checks here are HTTP requests to the nodes. */
async function eventually(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  await often(async () => {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 50))
    return false
  }, ms, what)
}

function inbox(client: WsClient): Env[] {
  return client.received.map((r) => JSON.parse(r) as Env)
}

t.test('txtzyme on one node of three: elected, forwarded, taken over, and why not', async (t) => {
  if (!(await needSocat(t))) return
  const pg = await startPostgres(t)
  if (!pg) return
  const store = await pg.createDatabase('placement')
  const simA = await simulatedDevice(t, { speed: 20 })
  const simB = await simulatedDevice(t, { speed: 20 })
  const data = mkdtempSync(join(tmpdir(), 'wikifarm-placement-'))
  t.teardown(() => rmSync(data, { recursive: true, force: true }))
  const nodes: Node[] = []
  t.teardown(() => { for (const n of nodes) n.child.kill('SIGKILL') })

  async function start(name: string, device: string, extra: Record<string, unknown> = {}): Promise<Node> {
    const child = spawn(process.execPath, [join(import.meta.dirname, 'fixtures/farm-child.js')], {
      env: {
        ...process.env,
        WIKIFARM_TEST_CONFIG: JSON.stringify({
          ...NO_LIMITS, data, store, farm: true, admin: ADMIN_SECRET, logLevel: 'silent',
          plugins: { txtzyme: { options: { device, openToVisitors: true, backoffMinMs: 50, heartbeatMs: 100 } } },
          ...extra,
        }),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const [chunk] = await once(child.stdout!, 'data') as [Buffer]
    const port = Number(chunk.toString().trim())
    const login = await http(port, 'POST', '/auth/reclaim/', SITE, {
      headers: { 'content-type': 'text/plain', origin: `http://${SITE}` }, body: ADMIN_SECRET,
    })
    t.equal(login.status, 200, `admin login on node ${name}`)
    const admin = String(login.headers['set-cookie']?.[0] ?? '').split(';')[0] as string
    const node = { name, child, port, admin }
    nodes.push(node)
    return node
  }

  async function txtzyme(node: Node): Promise<PluginView> {
    const res = await http(node.port, 'GET', '/system/status.json', SITE, { headers: { cookie: node.admin } })
    const status = JSON.parse(res.body) as { node: { id: string }; plugins: PluginView[] }
    return status.plugins.find((p) => p.name === 'txtzyme') as PluginView
  }

  // A first: it wins the election and runs the plugin on its device.
  const a = await start('A', simA.path)
  await eventually(async () => (await txtzyme(a)).state === 'running', 10_000, 'A runs txtzyme')
  const b = await start('B', simB.path)
  const c = await start('C', join(data, 'no-such-tty'), { pluginForwarding: false })
  // B and C never try while A holds the lock: they learn who owns it.
  await eventually(async () => (await txtzyme(b)).placed.owner !== null, 5000, 'B knows the owner')
  await eventually(async () => (await txtzyme(c)).placed.owner !== null, 5000, 'C knows the owner')

  const [onA, onB, onC] = [await txtzyme(a), await txtzyme(b), await txtzyme(c)]
  t.equal(onA.placement, 'one-node', 'txtzyme declares one-node')
  t.match(onA, { state: 'running', placed: { role: 'owner', owner: { id: `127.0.0.1:${a.port}` } } })
  t.match(onB, { state: 'standby', placed: { role: 'forwarder', owner: { id: `127.0.0.1:${a.port}` } } })
  t.match(onC, { state: 'standby', placed: { role: 'standby', owner: { id: `127.0.0.1:${a.port}` } } })
  t.equal([onA, onB, onC].filter((p) => p.state === 'running').length, 1, 'it runs on exactly one node')
  const linkmap = (JSON.parse((await http(b.port, 'GET', '/system/status.json', SITE,
    { headers: { cookie: b.admin } })).body) as { plugins: PluginView[] }).plugins.find((p) => p.name === 'linkmap')
  t.match(linkmap, { state: 'running', placement: 'every-node', placed: { role: 'every-node' } },
    'linkmap runs on every node')
  const html = await http(b.port, 'GET', '/system/status.html', SITE, { headers: { cookie: b.admin } })
  t.match(html.body, `one node: owner 127.0.0.1:${a.port}; this node: forwarder`, 'the status page shows the owner')

  // REST through B reaches A's device; C does not forward and names the owner.
  const rest = await http(b.port, 'GET', '/plugin/txtzyme/status', SITE)
  t.equal(rest.status, 200, 'REST forwarded from B')
  t.match(JSON.parse(rest.body), { state: 'ready', path: simA.path })
  const run = await http(b.port, 'POST', '/plugin/txtzyme/run', SITE, {
    headers: { 'content-type': 'application/json', origin: `http://${SITE}` }, body: '{"line":"2{kp}"}',
  })
  t.equal(run.status, 200, 'a JSON body crosses')
  t.match(JSON.parse(run.body), { lines: ['1', '0'] })
  const refused = await http(c.port, 'GET', '/plugin/txtzyme/status', SITE)
  t.equal(refused.status, 503)
  t.match(JSON.parse(refused.body),
    { code: 'WIKIFARM_ERR_PLUGIN_ELSEWHERE', reason: new RegExp(`127.0.0.1:${a.port}`) })

  // Websockets on B, two sites, two sessions: each client gets its own outputs; an observer
  // (through B as well) sees every line labelled with its site and an opaque session label.
  const observer = await openWs(b.port, '/plugin/txtzyme/v1', OTHER, { protocols: ['wikifarm.v1'] })
  t.teardown(() => observer.ws.close())
  t.equal(observer.ws.protocol, 'wikifarm.v1', 'the subprotocol is negotiated through the relay')
  observer.send({ type: 'observe', id: 'o' })
  await eventually(() => inbox(observer).some((m) => m.type === 'observing'), 3000, 'observing')
  const clients = await Promise.all([SITE, OTHER].map((host) =>
    openWs(b.port, '/plugin/txtzyme/v1', host, { protocols: ['wikifarm.v1'] })))
  for (const [i, client] of clients.entries()) {
    t.teardown(() => client.ws.close())
    for (let n = 0; n < 5; n++) client.send({ type: 'run', id: `${i}.${n}`, data: `_c${i}-${n}_` })
  }
  await eventually(() => clients.every((c) => inbox(c).filter((m) => m.type === 'output').length === 5), 10_000,
    'every output')
  for (const [i, client] of clients.entries()) {
    t.same(inbox(client).filter((m) => m.type === 'output').map((m) => m.data),
      Array.from({ length: 5 }, (_, n) => ({ lines: [`c${i}-${n}`] })), `client ${i}: its own outputs, in order`)
  }
  await eventually(() => inbox(observer).filter((m) => m.type === 'line').length >= 10, 3000, 'observed lines')
  const lines = inbox(observer).filter((m) => m.type === 'line').map((m) => m.data as { site: string; session: string;
    line: string })
  const labels = new Map<string, Set<string>>()
  for (const l of lines) {
    const i = Number(/^_c(\d)-/.exec(l.line)?.[1])
    t.equal(l.site, [SITE, OTHER][i], `line ${l.line} labelled with its site`)
    labels.set(l.session, (labels.get(l.session) ?? new Set()).add(String(i)))
  }
  t.equal(labels.size, 2, 'one label per client session')
  t.ok([...labels.values()].every((s) => s.size === 1), 'no label shared between clients')

  // Hostile: a visitor's forged forwarding header is refused, on the owner and on any node.
  for (const node of [a, b]) {
    const forged = await http(node.port, 'GET', '/plugin/txtzyme/status', SITE, {
      headers: { 'x-wikifarm-forwarded': `127.0.0.1%3A1;${Date.now()};AAAA` },
    })
    t.equal(forged.status, 403, `forged header refused on node ${node.name}`)
    t.match(JSON.parse(forged.body), { code: 'WIKIFARM_ERR_FORGED_FORWARD' })
  }

  // kill -9 the owner: the relayed sockets are told to come back (1012), and B, which reaches
  // the other device, runs the plugin within seconds.
  const killed = Date.now()
  a.child.kill('SIGKILL')
  const closed = await clients[0]!.waitClose(5000)
  t.equal(closed.code, 1012, 'a relayed socket closes with 1012 when its owner dies')
  await eventually(async () => (await txtzyme(b)).state === 'running', 8000, 'B takes over')
  const took = Date.now() - killed
  t.ok(took < 5000, `B took over in ${took} ms`)
  t.comment(`takeover after kill -9 of the owner: ${took} ms`)
  t.match(await txtzyme(b), { placed: { role: 'owner', owner: { id: `127.0.0.1:${b.port}` } } })
  const again = await openWs(b.port, '/plugin/txtzyme/v1', SITE, { protocols: ['wikifarm.v1'] })
  t.teardown(() => again.ws.close())
  again.send({ type: 'run', id: 'back', data: '_on-b_' })
  await eventually(() => inbox(again).some((m) => m.type === 'output'), 5000, 'output from B\'s device')
  t.same(inbox(again).find((m) => m.type === 'output')?.data, { lines: ['on-b'] })
  t.match(JSON.parse((await http(b.port, 'GET', '/plugin/txtzyme/status', SITE)).body), { path: simB.path })
  await eventually(async () => (await txtzyme(c)).placed.owner?.id === `127.0.0.1:${b.port}`, 5000, 'C sees B')

  // No node left that reaches a device: C reports why not, on its status and to clients.
  b.child.kill('SIGKILL')
  await eventually(async () => {
    const view = await txtzyme(c)
    return view.placed.owner === null && /no Txtzyme device/.test(view.reason ?? '')
  }, 8000, 'C says no node runs it, and why')
  const view = await txtzyme(c)
  t.match(view, { state: 'standby', placed: { role: 'standby', owner: null } })
  t.match(view.reason, /no Txtzyme device attached at .*no-such-tty/)
  const none = await http(c.port, 'GET', '/plugin/txtzyme/status', SITE)
  t.equal(none.status, 503)
  t.match(JSON.parse(none.body), { code: 'WIKIFARM_ERR_PLUGIN_ELSEWHERE', reason: /no node of the farm runs it now/ })
  const rows = await query<{ n: string }>(store, 'SELECT count(*) AS n FROM wikifarm_plugin_attempts')
  t.equal(Number(rows[0]?.n), 3, 'every node recorded its last attempt')
})
