// Pipelining over a real pty (socat) with the simulator: lines go out ahead of their sentinels
// within the window, every session still gets exactly its own output in order; the simulator's
// bounded input buffer loses lines when a host sends too far ahead, and the default window never
// does; a timeout and an unplug in the middle of a window fail exactly the lines in flight.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openPtyPair, serveSimulator, type ServedSimulator } from '../plugins/txtzyme/pty.js'
import { TxtzymeDevice } from '../plugins/txtzyme/device.js'
import { LineQueue, WINDOW_BYTES, WINDOW_LINES, type LineRecord, type QueueOptions } from '../plugins/txtzyme/queue.js'
import { INPUT_BUFFER, TxtzymeSimulator } from '../plugins/txtzyme/simulator.js'
import { simulatedDevice, needSocat } from './fixtures/txtzyme-device.js'
import { eventually, openWs } from './fixtures/ws-client.js'
import { http, listenLocal, startFarm } from './fixtures/test-farm.js'
import { fileURLToPath } from 'node:url'

function makeDevice(path: string, queueOptions: Partial<QueueOptions> = {}, heartbeatMs = 100, stallMs = 10_000) {
  let device: TxtzymeDevice | null = null
  const written: string[] = []
  const queue = new LineQueue({
    perSession: 100, global: 1000, timeoutMs: 5000,
    write: (text) => { written.push(text); device?.write(text) },
    ...queueOptions,
  })
  device = new TxtzymeDevice(queue, {
    path, syncTimeoutMs: 2000, backoffMinMs: 50, backoffMaxMs: 400, stallMs, heartbeatMs,
  })
  return { device, queue, written }
}

/** The simulator in this process (so the test reads its counters) at the far end of a socat pty pair. */
async function servedHere(t: Test, options: { speed?: number; inputBuffer?: number; dropUnread?: boolean } = {}):
Promise<{
  path: string
  served: ServedSimulator
}> {
  const dir = mkdtempSync(join(tmpdir(), 'txtzyme-pipe-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const pair = await openPtyPair(join(dir, 'dev'), join(dir, 'sim'))
  t.teardown(() => pair.close())
  const served = await serveSimulator(pair.simulatorPath, options)
  t.teardown(() => served.close())
  return { path: pair.devicePath, served }
}

t.test('the simulator: bytes that arrive while a line runs wait in a bounded buffer, the rest is lost', async (t) => {
  let out = ''
  const sim = new TxtzymeSimulator({ speed: 1, output: (s) => { out += s } })
  sim.input('30m_first_\n')
  // 10 lines of 20 bytes while the first runs: the buffer keeps INPUT_BUFFER bytes of them.
  for (let i = 0; i < 10; i++) sim.input(`_line-${String(i).padStart(2, '0')}_${' '.repeat(10)}\n`)
  await sim.idle()
  t.equal(sim.inputDropped, 200 - INPUT_BUFFER, 'what did not fit was dropped')
  const printed = out.split('\r\n').filter(Boolean)
  t.equal(printed[0], 'first')
  t.same(printed.slice(1, 7), Array.from({ length: 6 }, (_, i) => `line-0${i}`), 'the six lines that fit run')
  t.ok(printed.length <= 8, 'the lines past the buffer never ran whole')

  let quick = ''
  const idle = new TxtzymeSimulator({ speed: 1, output: (s) => { quick += s } })
  idle.input(`\n\n_${'y'.repeat(500)}_\n`)
  await idle.idle()
  t.equal(idle.inputDropped, 0, 'an idle firmware reads a long line (and empty lines) as fast as it comes')
  t.equal(quick, `${'y'.repeat(500)}\r\n`)
})

t.test('the simulator drops output the host does not read, after TRANSMIT_TIMEOUT', async (t) => {
  let taken = 0
  let unread = 0
  const sim = new TxtzymeSimulator({
    speed: 1,
    unread: () => unread,
    outputBuffer: 100,
    output: (s) => { unread += s.length; taken += s.length },
  })
  sim.input('100{_0123456789_}\n')
  await sim.idle()
  t.ok(taken <= 112, `only what fits the output buffer was taken (${taken} bytes)`)
  t.ok(sim.outputDropped >= 1200 - 112, 'the rest was dropped')
  unread = 0
  sim.input('_again_\n')
  await sim.idle()
  t.equal(taken - 108, 7, 'once the host reads again, output flows')
})

t.test('a host that does not read the pty: the simulator drops its output, as the firmware does', async (t) => {
  if (!(await needSocat(t))) return
  const { served } = await servedHere(t, { dropUnread: true })
  // Nobody opens the device end: socat and the ptys fill up, then the simulator's writes wait.
  served.simulator.input('60000{_0123456789012345678901234567890123456789_}\n')
  await eventually(() => served.simulator.outputDropped > 0, 10_000, 'output dropped')
  served.simulator.stop()
  t.pass('unread output is dropped after a bound instead of growing without end')
})

t.test('50 sessions at once through the pty: pipelined, each gets its own outputs in order', async (t) => {
  if (!(await needSocat(t))) return
  const { path, served } = await servedHere(t, { speed: 1 })
  const { device, queue, written } = makeDevice(path)
  t.teardown(() => device.close())
  await device.start()
  let most = 0
  const records: LineRecord[] = []
  queue.onLine((r) => { records.push(r); most = Math.max(most, queue.inFlight) })
  const results = await Promise.all(Array.from({ length: 50 }, (_, c) => Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      device.submit(`s${c}`, { site: 'a.example', label: `v${c}` }, i % 4 === 0 ? `${c}p${i}p` : `_c${c}-${i}_`)),
  )))
  for (const [c, lines] of results.entries()) {
    const expected = Array.from({ length: 20 }, (_, i) => (i % 4 === 0 ? [String(c), String(i)] : [`c${c}-${i}`]))
    if (JSON.stringify(lines) !== JSON.stringify(expected)) t.fail(`session ${c} got ${JSON.stringify(lines)}`)
  }
  t.pass('1000 lines: every session got its own 20 outputs, in order')
  t.ok(most > 1, `lines were sent ahead of their sentinels (up to ${most} on the wire)`)
  t.ok(most <= WINDOW_LINES, 'never more than the window')
  t.ok(written.some((w) => w.split('\n').length > 2), 'several lines went out in one write')
  t.equal(served.simulator.inputDropped, 0, 'the default window never overflows the input buffer')
  t.equal(queue.lost, 0)
  t.ok(queue.busyMs() > 0, 'the busy time is counted')
})

t.test('through the farm: 50 json clients at once, each its own outputs in order; /status: busyMs', async (t) => {
  if (!(await needSocat(t))) return
  const sim = await simulatedDevice(t, { speed: 100 })
  const options = { device: sim.path, openToVisitors: true }
  const farm = await startFarm(t, { farm: true, plugins: { txtzyme: { options } } },
    undefined, { builtinPluginsDir: fileURLToPath(new URL('../plugins/', import.meta.url)) })
  const port = await listenLocal(farm)
  const clients = await Promise.all(Array.from({ length: 50 }, async (_, c) => {
    const client = await openWs(port, '/plugin/txtzyme/v1', `s${c % 5}.example`, { protocols: ['wikifarm.v1'] })
    t.teardown(() => client.ws.close())
    return client
  }))
  for (const [c, client] of clients.entries()) {
    for (let i = 0; i < 10; i++) client.send({ type: 'run', id: `${i}`, data: `_c${c}-${i}_` })
  }
  const replies = (c: number) => (clients[c]?.received ?? [])
    .map((r) => JSON.parse(r) as { type: string; id?: string; data?: { lines?: string[] } })
    .filter((m) => m.type === 'output' || m.type === 'error')
  await eventually(() => clients.every((_, c) => replies(c).length === 10), 20_000, 'every reply')
  for (let c = 0; c < 50; c++) {
    const got = replies(c).map((m) => [m.id, m.data?.lines])
    const want = Array.from({ length: 10 }, (_, i) => [`${i}`, [`c${c}-${i}`]])
    if (JSON.stringify(got) !== JSON.stringify(want)) t.fail(`client ${c} got ${JSON.stringify(got)}`)
  }
  t.pass('500 lines from 50 clients: each its own, in order')
  const status = JSON.parse((await http(port, 'GET', '/plugin/txtzyme/status', 's0.example')).body) as
    Record<string, number>
  t.match(status, { inFlight: 0, queued: 0, completed: 500 })
  t.ok(status.busyMs !== undefined && status.busyMs > 0, `busyMs ${status.busyMs}`)
})

t.test('a window too large for the input buffer loses lines; the default window does not', async (t) => {
  if (!(await needSocat(t))) return
  const lines = Array.from({ length: 40 }, (_, i) => `2m_k${String(i).padStart(2, '0')}_`)
  const origin = (i: number) => ({ site: 'a.example', label: `v${i % 8}` })

  const big = await servedHere(t, { speed: 1 })
  const tooLarge = makeDevice(big.path, { windowBytes: 4096, windowLines: 64, timeoutMs: 3000 })
  t.teardown(() => tooLarge.device.close())
  await tooLarge.device.start()
  const pending = Promise.allSettled(lines.map((l, i) => tooLarge.device.submit(`s${i % 8}`, origin(i), l)))
  // Once the device has run what it kept, one more line: its sentinel comes before the lost ones'.
  await new Promise((r) => setTimeout(r, 300))
  const late = tooLarge.device.submit('s9', origin(9), '_late_')
  const outcomes = await pending
  t.ok(big.served.simulator.inputDropped > 0, `the simulator lost ${big.served.simulator.inputDropped} bytes`)
  const failed = outcomes.filter((o) => o.status === 'rejected')
  t.ok(failed.length > 0, `${failed.length} of 40 lines failed`)
  for (const f of failed) {
    t.match((f as PromiseRejectedResult).reason, { code: /^TXTZYME_(LINE_LOST|TIMEOUT|DEVICE_LOST)$/ }, 'with a coded error')
  }
  for (const [i, o] of outcomes.entries()) {
    if (o.status === 'fulfilled') t.same(o.value, [`k${String(i).padStart(2, '0')}`], `line ${i}: its own output`)
  }
  t.ok(failed.some((f) => (f as PromiseRejectedResult).reason.code === 'TXTZYME_LINE_LOST'),
    'the loss is detected (a later sentinel first), not left to time out')
  await t.rejects(late, { code: 'TXTZYME_LINE_LOST' }, 'the line sent after the loss ran merged with it: refused')
  t.equal(tooLarge.device.status().state, 'ready', 'no reconnect was needed')
  t.same(await tooLarge.device.submit('s0', origin(0), '_after_'), ['after'], 'resynced: the next line is in step')

  const fits = await servedHere(t, { speed: 1 })
  const chosen = makeDevice(fits.path, { timeoutMs: 1500 })
  t.teardown(() => chosen.device.close())
  await chosen.device.start()
  const ok = await Promise.all(lines.map((l, i) => chosen.device.submit(`s${i % 8}`, origin(i), l)))
  t.same(ok, lines.map((_, i) => [`k${String(i).padStart(2, '0')}`]), 'every line ran, its own output')
  t.equal(fits.served.simulator.inputDropped, 0, `the default window (${WINDOW_BYTES} bytes) lost nothing`)

  // The smallest buffer the default window is chosen for (AT90USB162, an Arduino's ring): still nothing lost.
  const small = await servedHere(t, { speed: 1, inputBuffer: WINDOW_BYTES })
  const onSmall = makeDevice(small.path, { timeoutMs: 1500 })
  t.teardown(() => onSmall.device.close())
  await onSmall.device.start()
  t.same(
    await Promise.all(lines.map((l, i) => onSmall.device.submit(`s${i % 8}`, origin(i), l))),
    lines.map((_, i) => [`k${String(i).padStart(2, '0')}`]),
  )
  t.equal(small.served.simulator.inputDropped, 0, `a ${WINDOW_BYTES}-byte input buffer lost nothing either`)
})

t.test('a timeout mid-window: that line fails, those behind it keep their place, nothing more is sent', async (t) => {
  if (!(await needSocat(t))) return
  const { path } = await servedHere(t, { speed: 1 })
  const { device, queue } = makeDevice(path)
  t.teardown(() => device.close())
  await device.start()
  const records: LineRecord[] = []
  queue.onLine((r) => records.push(r))
  const slow = device.submit('a', { site: 'a.example', label: 'A' }, '400m_slow_', 100)
  const b = device.submit('b', { site: 'a.example', label: 'B' }, '_b_', 150)
  const c = device.submit('c', { site: 'a.example', label: 'C' }, '_c_', 150)
  t.equal(queue.inFlight, 3, 'three lines on the wire')
  const started = Date.now()
  await t.rejects(slow, { code: 'TXTZYME_TIMEOUT' }, 'the slow line times out')
  t.ok(Date.now() - started < 300, 'on time')
  const sentBefore = queue.sent
  const d = device.submit('d', { site: 'a.example', label: 'D' }, '_d_')
  await new Promise((r) => setTimeout(r, 50))
  t.equal(queue.sent, sentBefore, 'a line after the timeout is held until the late sentinel is back')
  t.same(await b, ['b'], 'a line sent behind the slow one gets its own output: its clock started when it ran')
  t.same(await c, ['c'])
  t.same(await d, ['d'], 'the held line goes once the device caught up')
  t.same(
    records.map((r) => [r.line, r.lines, r.timedOut]),
    [['400m_slow_', ['slow'], true], ['_b_', ['b'], false], ['_c_', ['c'], false], ['_d_', ['d'], false]],
    'observers see the late output, marked, then the others in order',
  )
})

t.test('an unplug mid-window fails exactly the lines in flight (and those waiting), each once, coded', async (t) => {
  if (!(await needSocat(t))) return
  const sim = await simulatedDevice(t, { speed: 1 })
  const { device, queue } = makeDevice(sim.path, { windowLines: 3 }, 50)
  t.teardown(() => device.close())
  await device.start()
  const answers = new Map<string, string[]>()
  const ask = (key: string, line: string) => {
    answers.set(line, [])
    return device.submit(key, { site: 'a.example', label: key }, line).then(
      (out) => { answers.get(line)?.push(`ok ${out.join(',')}`) },
      (err: { code: string }) => { answers.get(line)?.push(err.code) },
    )
  }
  const all = [ask('a', '3000m_a_'), ask('b', '_b_'), ask('c', '_c_'), ask('d', '_d_'), ask('e', '_e_')]
  t.equal(queue.inFlight, 3, 'three on the wire, two waiting')
  await new Promise((r) => setTimeout(r, 50))
  await sim.unplug()
  await Promise.all(all)
  t.same(
    [...answers.entries()],
    [
      ['3000m_a_', ['TXTZYME_DEVICE_LOST']],
      ['_b_', ['TXTZYME_DEVICE_LOST']],
      ['_c_', ['TXTZYME_DEVICE_LOST']],
      ['_d_', ['TXTZYME_DEVICE_LOST']],
      ['_e_', ['TXTZYME_DEVICE_LOST']],
    ],
    'each line answered exactly once, with the coded loss',
  )
  t.equal(queue.inFlight, 0, 'nothing left on the wire')
  await sim.plug()
  await eventually(() => device.status().state === 'ready', 5000, 'ready again')
  t.same(await device.submit('z', { site: 'a.example', label: 'z' }, '_back_'), ['back'], 'in step after replug')
})
