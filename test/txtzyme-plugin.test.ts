// The txtzyme plugin through a real kernel, over a real pty with the simulator: many clients
// on many sites get exactly their own output; observers see every line labelled; the legacy
// text client; REST; owners only; unavailable at boot, then a device appears; unplug and replug.
import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { mkdtempSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { claim, http, listenLocal, startFarm } from './fixtures/test-farm.js'
import { eventually, openWs, type WsClient } from './fixtures/ws-client.js'
import { simulatedDevice, needSocat } from './fixtures/txtzyme-device.js'

const PLUGINS = fileURLToPath(new URL('../plugins/', import.meta.url))

async function farmWith(t: Test, options: Record<string, unknown>) {
  const farm = await startFarm(t, { farm: true, plugins: { txtzyme: { options } } }, undefined, {
    builtinPluginsDir: PLUGINS,
  })
  const port = await listenLocal(farm)
  return { farm, port, status: () => farm.kernel.plugins.statuses().find((s) => s.name === 'txtzyme') }
}

interface Env { type: string; id?: string; data?: unknown }

/** Every envelope the client has received so far, parsed. */
function inbox(client: WsClient): { readonly all: Env[] } {
  return { get all() { return client.received.map((r) => JSON.parse(r) as Env) } }
}

t.test('20 clients on 5 sites, 50 lines each: their own outputs, in order; observers see all, labelled', async (t) => {
  if (!(await needSocat(t))) return
  const sim = await simulatedDevice(t, { speed: 100 })
  const { port, status } = await farmWith(t, { device: sim.path, openToVisitors: true })
  t.equal(status()?.state, 'running')
  const sites = Array.from({ length: 5 }, (_, s) => `s${s}.example`)
  const observer = await openWs(port, '/plugin/txtzyme/v1', 'watch.example', { protocols: ['wikifarm.v1'] })
  t.teardown(() => observer.ws.close())
  const seen = inbox(observer)
  observer.send({ type: 'observe', id: 'o' })
  await eventually(() => seen.all.some((m) => m.type === 'observing'), 2000, 'observing')

  const clients = await Promise.all(Array.from({ length: 20 }, async (_, c) => {
    const host = sites[c % 5] as string
    const client = await openWs(port, '/plugin/txtzyme/v1', host, { protocols: ['wikifarm.v1'] })
    t.teardown(() => client.ws.close())
    return { c, host, client, got: inbox(client) }
  }))
  const started = Date.now()
  for (const { c, client } of clients) {
    for (let i = 0; i < 50; i++)
      client.send({ type: 'run', id: `${c}.${i}`, data: i % 5 === 0 ? `${c}p${i}p` : `_c${c}-${i}_` })
  }
  const done = () =>
    clients.every(({ got }) => got.all.filter((m) => m.type === 'output' || m.type === 'error').length === 50)
  await eventually(done, 30_000, 'every reply')
  const elapsed = Date.now() - started
  t.comment(`1000 lines from 20 clients in ${elapsed} ms (${Math.round(1000_000 / elapsed)} lines/s)`)
  for (const { c, got } of clients) {
    const replies = got.all.filter((m) => m.type === 'output' || m.type === 'error')
    const expected = Array.from({ length: 50 }, (_, i) => ({
      type: 'output', id: `${c}.${i}`, data: { lines: i % 5 === 0 ? [String(c), String(i)] : [`c${c}-${i}`] },
    }))
    t.same(replies, expected, `client ${c}: its own 50 outputs, in order, nothing else`)
    t.match(got.all[0], { type: 'state', data: { state: 'ready' } }, 'the state comes first')
  }
  await eventually(() => seen.all.filter((m) => m.type === 'line').length >= 1000, 5000, 'observer lines')
  const lines = seen.all
    .filter((m) => m.type === 'line')
    .map((m) => m.data as { site: string; session: string; line: string; lines: string[] })
  t.equal(lines.length, 1000)
  const labels = new Map<string, string>() // label → client
  let mislabelled = 0
  for (const l of lines) {
    const match = /^_c(\d+)-\d+_$|^(\d+)p\d+p$/.exec(l.line)
    const c = Number(match?.[1] ?? match?.[2])
    if (l.site !== sites[c % 5]) mislabelled++
    const known = labels.get(l.session)
    if (known === undefined) labels.set(l.session, String(c))
    else if (known !== String(c)) t.fail(`label ${l.session} used by clients ${known} and ${c}`)
  }
  t.equal(mislabelled, 0, 'every line is labelled with its site')
  t.equal(labels.size, 20, 'one opaque label per client session')
  t.ok([...labels.keys()].every((k) => /^v-[0-9a-f]{10}$/.test(k)), 'labels are opaque')
  // Fairness: while all 20 are backlogged (lines 100–700), each gets 1/20 of the device, ± 10 %.
  const window = lines.slice(100, 700)
  for (const label of labels.keys()) {
    const share = window.filter((l) => l.session === label).length
    t.ok(Math.abs(share - 30) <= 3, `client ${labels.get(label)} has ${share} of 600 lines (fair: 30)`)
  }
})

t.test('owners only; the legacy text client; REST; a timeout keeps replies in step', async (t) => {
  if (!(await needSocat(t))) return
  const sim = await simulatedDevice(t, { speed: 1 })
  const { farm, port } = await farmWith(t, { device: sim.path, timeoutMs: 5000 })
  const host = 'owned.example'
  const owner = await claim(t, farm.app, host)

  // A visitor may look but not drive.
  const status = await http(port, 'GET', '/plugin/txtzyme/status', host)
  t.equal(status.status, 200)
  t.match(JSON.parse(status.body), { state: 'ready', chip: 'ATmega32U4', mayRun: false, openToVisitors: false })
  const refused = await http(port, 'POST', '/plugin/txtzyme/run', host, {
    headers: { 'content-type': 'application/json' },
    body: '{"line":"1p"}',
  })
  t.equal(refused.status, 403)
  t.match(JSON.parse(refused.body), { code: 'TXTZYME_NOT_OWNER' })
  const visitor = await openWs(port, '/plugin/txtzyme/v1', host)
  visitor.send({ type: 'run', id: 'x', data: '1p' })
  t.match(await visitor.nextJson(), { type: 'state' })
  t.match(await visitor.nextJson(), { type: 'error', id: 'x', data: { code: 'TXTZYME_NOT_OWNER' } })
  visitor.ws.close()
  const legacyVisitor = await openWs(port, '/plugin/txtzyme', host)
  t.match(await legacyVisitor.next(), /^error: only the site owner/)
  t.equal((await legacyVisitor.waitClose()).code, 4003)

  // The owner, through the legacy path: plain text lines both ways.
  const legacy = await openWs(port, '/plugin/txtzyme', host, { cookie: owner.cookie })
  t.teardown(() => legacy.ws.close())
  legacy.send('3{kp}\n_hello_\n')
  t.same([await legacy.next(), await legacy.next(), await legacy.next(), await legacy.next()], ['2', '1', '0', 'hello'])
  legacy.send('_unbalanced\n')
  t.match(await legacy.next(), /^error: odd number of '_'/)
  legacy.send('_after_\n')
  t.equal(await legacy.next(), 'after', 'still in step after an error')

  // The same url, offered wikifarm.v1: the JSON envelope.
  const modern = await openWs(port, '/plugin/txtzyme', host, { cookie: owner.cookie, protocols: ['wikifarm.v1'] })
  t.teardown(() => modern.ws.close())
  t.equal(modern.ws.protocol, 'wikifarm.v1')
  t.match(
    await modern.nextJson(),
    { type: 'state', data: { state: 'ready' } },
    'a v1 client on the legacy url gets envelopes',
  )
  modern.send({ type: 'run', id: 'm1', data: '_modern_' })
  t.same(await modern.nextJson(), { type: 'output', id: 'm1', data: { lines: ['modern'] } })

  // REST: one line in, its labelled output out.
  const json = { 'content-type': 'application/json', cookie: owner.cookie }
  const ran = await http(port, 'POST', '/plugin/txtzyme/run', host, { headers: json, body: '{"line":"2{_r_}"}' })
  t.equal(ran.status, 200)
  t.match(JSON.parse(ran.body), { line: '2{_r_}', lines: ['r', 'r'], site: host, session: /^v-/ })
  const bad = await http(port, 'POST', '/plugin/txtzyme/run', host, { headers: json, body: '{"line":"3{2{kp}}"}' })
  t.equal(bad.status, 400)
  t.match(JSON.parse(bad.body), { code: 'TXTZYME_LINE_NESTED_LOOP' })
  t.same(
    Object.keys(JSON.parse(bad.body) as object),
    ['error', 'code'],
    'worded as the kernel words its errors: { error, code }',
  )
  const started = Date.now()
  const [slow, next] = await Promise.all([
    http(port, 'POST', '/plugin/txtzyme/run', host, { headers: json, body: '{"line":"400m_slow_","timeoutMs":50}' }),
    new Promise((r) => setTimeout(r, 20)).then(() =>
      http(port, 'POST', '/plugin/txtzyme/run', host, { headers: json, body: '{"line":"_next_"}' })),
  ])
  t.equal(slow.status, 504, 'the long line answers a timeout')
  t.match(JSON.parse(slow.body), { code: 'TXTZYME_TIMEOUT' })
  t.equal(next.status, 200)
  t.same(JSON.parse(next.body).lines, ['next'], 'the next reply is its own, not the late output')
  t.ok(Date.now() - started >= 350, 'the device stayed blocked until the slow line finished')
  const text = await http(port, 'POST', '/plugin/txtzyme/run', host, {
    headers: { 'content-type': 'text/plain', cookie: owner.cookie },
    body: '_plain_',
  })
  t.same(JSON.parse(text.body).lines, ['plain'], 'a text/plain body is one line')
})

t.test('unavailable at boot names where it looked; a device that appears later is used', async (t) => {
  if (!(await needSocat(t))) return
  const empty = mkdtempSync(join(tmpdir(), 'txtzyme-dev-'))
  t.teardown(() => rmSync(empty, { recursive: true, force: true }))
  const scanned = await farmWith(t, { devDir: empty })
  t.match(scanned.status(), {
    state: 'unavailable',
    reason: /^no Txtzyme device attached \(looked at SerialPort\.list\(\) for USB 16C0:047A, .*ttyACM\*\)$/,
  })
  const refused = await http(scanned.port, 'GET', '/plugin/txtzyme/status', 'a.example')
  t.equal(refused.status, 503)
  t.match(JSON.parse(refused.body), { code: 'WIKIFARM_ERR_PLUGIN_UNAVAILABLE', reason: /no Txtzyme device attached/ })
  const early = await openWs(scanned.port, '/plugin/txtzyme/v1', 'a.example')
  t.match(
    await early.waitClose(),
    { code: 1013, reason: /no Txtzyme device attached/ },
    'sockets close with 1013 and the reason',
  )

  const sim = await simulatedDevice(t, { speed: 10, plug: false })
  const { port, status } = await farmWith(t, { device: sim.path, backoffMinMs: 50, backoffMaxMs: 200, heartbeatMs: 50 })
  t.match(status(), {
    state: 'unavailable',
    reason: `no Txtzyme device attached at ${sim.path} (the configured device path does not exist)`,
  })
  await sim.plug()
  await eventually(() => status()?.state === 'running', 6000, 'launched by the retry')
  const client = await openWs(port, '/plugin/txtzyme/v1', 'a.example', { headers: {} })
  t.teardown(() => client.ws.close())
  const got = inbox(client)
  await eventually(() => got.all.length > 0, 2000, 'state')
  t.match(got.all[0], { type: 'state', data: { state: 'ready', chip: 'ATmega32U4' } })

  // Unplug: the state is pushed and lines fail; replug: ready again.
  await sim.unplug()
  await eventually(
    () => got.all.some((m) => m.type === 'state' && (m.data as { state: string }).state === 'lost'),
    3000,
    'lost pushed',
  )
  t.match(
    got.all.find((m) => (m.data as { state?: string } | undefined)?.state === 'lost'),
    { data: { reason: /went away/ } },
  )
  await sim.plug()
  await eventually(
    () => got.all.some((m, i) => i > 1 && m.type === 'state' && (m.data as { state: string }).state === 'ready'),
    5000,
    'ready pushed',
  )
})

t.test('bad input: unknown types, bad lines, floods, a client gone mid-line', async (t) => {
  if (!(await needSocat(t))) return
  const sim = await simulatedDevice(t, { speed: 1 })
  const { port } = await farmWith(t, { device: sim.path, openToVisitors: true, perSessionCap: 5 })
  const a = await openWs(port, '/plugin/txtzyme/v1', 'a.example')
  const b = await openWs(port, '/plugin/txtzyme/v1', 'b.example')
  t.teardown(() => { a.ws.close(); b.ws.close() })
  const msgsA = inbox(a)
  const msgsB = inbox(b)
  const reply = async (got: { readonly all: Env[] }, id: string) => {
    await eventually(() => got.all.some((m) => m.id === id), 5000, `reply ${id}`)
    return got.all.find((m) => m.id === id)
  }

  a.send({ type: 'launch-missiles', id: 'u' })
  await eventually(() => msgsA.all.some((m) => m.type === 'error'), 2000, 'an error for an unknown type')
  a.send({ type: 'run', id: 'ctl', data: '1p\u0007' })
  const ctl = await reply(msgsA, 'ctl')
  t.match(ctl, { type: 'error', data: { code: 'TXTZYME_LINE_NOT_PRINTABLE' } })
  t.same(Object.keys((ctl as { data: object }).data), ['error', 'code'], 'socket errors too')
  a.send({ type: 'run', id: 'long', data: 'p'.repeat(2000) })
  t.match(await reply(msgsA, 'long'), { type: 'error', data: { code: 'TXTZYME_LINE_TOO_LONG' } })

  // A flood from one client: beyond its cap, a clear error; the lines within it still run.
  for (let i = 0; i < 8; i++) a.send({ type: 'run', id: `f${i}`, data: `20m_f${i}_` })
  const flood = await Promise.all(Array.from({ length: 8 }, (_, i) => reply(msgsA, `f${i}`)))
  t.ok(
    flood.some((m) => m?.type === 'error' && (m.data as { code: string }).code === 'TXTZYME_SESSION_QUEUE_FULL'),
    'the flood meets its cap',
  )
  t.match(flood[0], { type: 'output', data: { lines: ['f0'] } })

  // A client that goes away mid-line: its output is dropped, others stay in step.
  const gone = await openWs(port, '/plugin/txtzyme/v1', 'c.example')
  gone.send({ type: 'run', id: 'g1', data: '150m_gone1_' })
  gone.send({ type: 'run', id: 'g2', data: '_gone2_' })
  await new Promise((r) => setTimeout(r, 30))
  gone.ws.terminate()
  b.send({ type: 'run', id: 'b1', data: '_mine_' })
  t.match(
    await reply(msgsB, 'b1'),
    { type: 'output', data: { lines: ['mine'] } },
    'the next client gets its own output',
  )
  b.send({ type: 'run', id: 'b2', data: '2{kp}' })
  t.match(await reply(msgsB, 'b2'), { type: 'output', data: { lines: ['1', '0'] } })
})

t.test('with the simulator option and no device, the plugin runs the simulator and says so', async (t) => {
  if (!(await needSocat(t))) return
  const empty = mkdtempSync(join(tmpdir(), 'txtzyme-none-'))
  t.teardown(() => rmSync(empty, { recursive: true, force: true }))
  const { farm, port, status } = await farmWith(t, { devDir: empty, simulator: true, openToVisitors: true })
  if (/\btxtzyme=process\b/.test(process.env.WIKIFARM_TEST_ISOLATION ?? '')) {
    // The demo simulator runs socat, and a process plugin may start no process: refused, plainly.
    t.match(
      status(),
      { state: 'failed', reason: /restricted|ERR_ACCESS_DENIED/ },
      'process mode: no simulator, and the reason says why',
    )
    return
  }
  t.equal(status()?.state, 'running', 'no device, yet running')
  const device = await http(port, 'GET', '/plugin/txtzyme/status', 'sim.example')
  t.match(JSON.parse(device.body), { state: 'ready', simulated: true, chip: 'ATmega32U4' })
  const ran = await http(port, 'POST', '/plugin/txtzyme/run', 'sim.example', {
    headers: { 'content-type': 'application/json' },
    body: '{"line":"_sim_"}',
  })
  t.same(JSON.parse(ran.body).lines, ['sim'])
  const path = JSON.parse(device.body).path as string
  await farm.kernel.close()
  t.notOk(existsSync(path), 'closing the farm removes the simulated device')
})
