// Fuzzed Txtzyme lines. The line rules exist to keep the device in step: a line that passes
// validateLine, run by the firmware (the simulator) with the sentinel appended, must end with
// the sentinel and nothing after it, whatever its x, loops and text. A refused line is refused
// with one of the documented codes. Then lines through the whole plugin over a real pty: every
// request gets exactly one answer, and the device is still in step after them.
import t from 'tap'
import fc from 'fast-check'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LineError, validateLine } from '../plugins/txtzyme/line.js'
import { TxtzymeSimulator } from '../plugins/txtzyme/simulator.js'
import { openPtyPair, serveSimulator } from '../plugins/txtzyme/pty.js'
import { claim, listenLocal, startFarm } from './fixtures/test-farm.js'
import { openWs } from './fixtures/ws-client.js'
import { needSocat } from './fixtures/txtzyme-device.js'
import { fuzz, RUNS } from './fixtures/fuzz.js'

const CODES = new Set([
  'TXTZYME_LINE_EMPTY',
  'TXTZYME_LINE_TOO_LONG',
  'TXTZYME_LINE_NOT_PRINTABLE',
  'TXTZYME_LINE_UNBALANCED_TEXT',
  'TXTZYME_LINE_UNBALANCED_LOOP',
  'TXTZYME_LINE_NESTED_LOOP',
  'TXTZYME_LINE_BRACE_IN_TEXT',
])
const SENTINEL = 'zq7sentinel'

/** Mostly Txtzyme's own alphabet, so a good share of lines are valid; sometimes anything. */
const line = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .array(fc.constantFrom(...'0123456789pabcdefiomukhsvt{}_ _xq!\r\n'.split('')), { maxLength: 40 })
      .map((c) => c.join('')),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('p', '_a_', '1{p}'), fc.integer({ min: 300, max: 1100 }))
      .map(([s, n]) => s.repeat(Math.ceil(n / s.length)).slice(0, n)),
  },
)

t.test(`${RUNS} fuzzed lines: accepted ones keep the sentinel last, refused ones say why`, async (t) => {
  let accepted = 0
  await fuzz(t, 'validateLine against the simulator', line, async (raw) => {
    let valid: string
    try {
      valid = validateLine(raw)
    } catch (err) {
      if (!(err instanceof LineError) || !CODES.has(err.code)) throw err
      return
    }
    accepted++
    let out = ''
    // Delays scaled to nothing: the firmware's logic, not its timing.
    const sim = new TxtzymeSimulator({ speed: 1e12, output: (text) => { out += text } })
    sim.x = 3
    sim.input(`${valid}_${SENTINEL}_\n`)
    await sim.idle()
    const printed = out.split('\r\n')
    if (printed.at(-1) !== '' || printed.at(-2) !== SENTINEL)
      throw new Error(`line ${JSON.stringify(valid)} printed ${JSON.stringify(out.slice(-200))} after its sentinel`)
    if (printed.slice(0, -2).includes(SENTINEL))
      throw new Error(`line ${JSON.stringify(valid)} printed the sentinel early`)
  })
  t.ok(accepted > RUNS / 10, `${accepted} lines were valid`)
})

t.test('fuzzed lines through the plugin over a real pty: one answer each, then still in step', async (t) => {
  if (!(await needSocat(t))) return
  const dir = mkdtempSync(join(tmpdir(), 'fuzz-lines-'))
  const pair = await openPtyPair(join(dir, 'device'), join(dir, 'sim'))
  const sim = await serveSimulator(pair.simulatorPath, { speed: 1e9 })
  t.teardown(async () => { await sim.close(); await pair.close(); rmSync(dir, { recursive: true, force: true }) })
  const farm = await startFarm(t, {
    farm: true,
    plugins: { txtzyme: { options: { device: pair.devicePath, perSessionCap: 10_000 } } },
  })
  const owner = await claim(t, farm.app, 'a.example')
  const port = await listenLocal(farm)
  const client = await openWs(port, '/plugin/txtzyme/v1', 'a.example', { cookie: owner.cookie })
  await client.nextJson()
  const answers = new Map<string, number>()
  let n = 0
  await fuzz(t, 'lines over the pty', fc.array(line, { minLength: 1, maxLength: 5 }), async (lines) => {
    const ids = lines.map((l) => {
      const id = `l${n++}`
      client.send({ type: 'run', id, data: l })
      return id
    })
    // Each line is answered once: its output or a coded error.
    while (ids.some((id) => !answers.has(id))) {
      const m = await client.nextJson<{ type: string; id?: string; data?: { code?: string } }>(5000)
      if (m.type === 'state') continue
      if (m.id === undefined) throw new Error(`an answer without id: ${JSON.stringify(m)}`)
      if (m.type !== 'output' && !(m.type === 'error' && typeof m.data?.code === 'string'))
        throw new Error(`not an answer: ${JSON.stringify(m)}`)
      answers.set(m.id, (answers.get(m.id) ?? 0) + 1)
    }
  }, { runs: Math.min(RUNS, 1000) })
  t.ok([...answers.values()].every((count) => count === 1), `${answers.size} lines, each answered exactly once`)
  client.send({ type: 'run', id: 'check', data: '_in step_' })
  for (;;) {
    const m = await client.nextJson<{ id?: string; data?: { lines?: string[] } }>(5000)
    if (m.id !== 'check') continue
    t.same(m.data?.lines, ['in step'], 'the next line gets its own output')
    break
  }
  client.ws.close()
  await client.waitClose()
})
