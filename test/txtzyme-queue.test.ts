// Line validation and the line queue, against the simulator in-process (no pty): output
// matching by sentinel, round-robin fairness, caps, timeouts, cancellation and device loss.
import t from 'tap'
import { validateLine, LineError, MAX_LINE } from '../plugins/txtzyme/line.js'
import { LineQueue, TxtzymeError, type LineRecord, type QueueOptions } from '../plugins/txtzyme/queue.js'
import { TxtzymeSimulator } from '../plugins/txtzyme/simulator.js'

function codeOf(fn: () => unknown): string | null {
  try {
    fn()
    return null
  } catch (err) {
    return err instanceof LineError ? err.code : 'not a LineError'
  }
}

t.test('validateLine', async (t) => {
  t.equal(validateLine('3{kp}_done_\n'), '3{kp}_done_', 'the line ending is dropped')
  t.equal(validateLine('1d1o 100m 1d0o'), '1d1o 100m 1d0o')
  t.equal(codeOf(() => validateLine('')), 'TXTZYME_LINE_EMPTY')
  t.equal(codeOf(() => validateLine('x'.repeat(MAX_LINE + 1))), 'TXTZYME_LINE_TOO_LONG')
  t.equal(codeOf(() => validateLine('x'.repeat(MAX_LINE))), null, 'the longest line is accepted')
  t.equal(codeOf(() => validateLine('1p\n2p')), 'TXTZYME_LINE_NOT_PRINTABLE', 'one line per packet')
  t.equal(codeOf(() => validateLine('_caf\u00e9_')), 'TXTZYME_LINE_NOT_PRINTABLE')
  t.equal(codeOf(() => validateLine('_open')), 'TXTZYME_LINE_UNBALANCED_TEXT')
  t.equal(codeOf(() => validateLine('3{kp')), 'TXTZYME_LINE_UNBALANCED_LOOP')
  t.equal(codeOf(() => validateLine('kp}')), 'TXTZYME_LINE_UNBALANCED_LOOP')
  t.equal(codeOf(() => validateLine('3{2{kp}}')), 'TXTZYME_LINE_NESTED_LOOP')
  t.equal(codeOf(() => validateLine('_a}b_')), 'TXTZYME_LINE_BRACE_IN_TEXT')
  try {
    validateLine('_open')
  } catch (err) {
    t.match((err as Error).message, /odd number of '_'/, 'the message says what is wrong')
  }
})

/** A queue wired to an in-process simulator, as the device layer wires it to the tty. */
function harness(options: Partial<QueueOptions> = {}, speed = 1000) {
  const written: string[] = []
  let queue: LineQueue | null = null
  let partial = ''
  const sim = new TxtzymeSimulator({
    speed,
    output: (text) => {
      partial += text
      let at: number
      while ((at = partial.indexOf('\r\n')) >= 0) {
        const line = partial.slice(0, at)
        partial = partial.slice(at + 2)
        queue?.deviceLine(line)
      }
    },
  })
  queue = new LineQueue({
    perSession: 100, global: 1000, timeoutMs: 2000,
    write: (text) => { written.push(text); sim.input(text) },
    ...options,
  })
  return { queue, sim, written }
}

t.test('output up to the sentinel goes to its requester', async (t) => {
  const { queue, written } = harness()
  const early = queue.submit('a', { site: 's', label: 'A' }, '_held_')
  t.equal(written.length, 0, 'nothing is sent while the gate is closed')
  queue.setOpen(true)
  t.same(await early, ['held'])
  t.match(written[0], /^_held__tz[0-9a-z]+_\n$/, 'the sentinel is appended to the same line')
  t.same(await queue.submit('a', { site: 's', label: 'A' }, '3{kp}'), ['2', '1', '0'])
  t.same(await queue.submit('a', { site: 's', label: 'A' }, '1d1o'), [], 'a line that prints nothing')
  t.match(
    await queue.submit('a', { site: 's', label: 'A' }, 'h'),
    ['Txtzyme simulator (wikifarm)'],
    'help, several lines',
  )
  queue.deviceLine('garbage with nothing on the device')
  t.equal(queue.stray, 1, 'device lines with no line on the device are counted and dropped')
})

t.test('round-robin: every backlogged session gets its share', async (t) => {
  const { queue } = harness({}, 100000)
  const order: string[] = []
  queue.onLine((record) => order.push(record.origin.label))
  const sessions = ['A', 'B', 'C', 'D']
  const all: Promise<string[]>[] = []
  // A floods first; B, C, D join after: a FIFO would serve A's 50 lines first.
  for (const label of sessions) {
    for (let i = 0; i < 50; i++) all.push(queue.submit(label, { site: 's', label }, `${i}p`))
  }
  queue.setOpen(true)
  const results = await Promise.all(all)
  for (const [s, label] of sessions.entries()) {
    t.same(
      results.slice(s * 50, s * 50 + 50),
      Array.from({ length: 50 }, (_, i) => [String(i)]),
      `${label} gets its own outputs in order`,
    )
  }
  const window = order.slice(0, 100)
  for (const label of sessions) {
    const share = window.filter((l) => l === label).length
    t.ok(Math.abs(share - 25) <= 2.5, `${label} has ${share} of the first 100 lines (fair: 25 ± 10 %)`)
  }
})

t.test('caps', async (t) => {
  const { queue } = harness({ perSession: 3, global: 5 })
  const origin = { site: 's', label: 'A' }
  const accepted = [1, 2, 3].map((i) => queue.submit('a', origin, `${i}p`))
  await t.rejects(queue.submit('a', origin, '4p'), { code: 'TXTZYME_SESSION_QUEUE_FULL', message: /3 lines waiting/ })
  const others = [queue.submit('b', origin, '1p'), queue.submit('b', origin, '2p')]
  await t.rejects(queue.submit('c', origin, '1p'), { code: 'TXTZYME_QUEUE_FULL' })
  queue.setOpen(true)
  t.same(await Promise.all([...accepted, ...others]), [['1'], ['2'], ['3'], ['1'], ['2']])
})

t.test('a timeout answers the requester; the next reply still matches', async (t) => {
  const { queue } = harness({ timeoutMs: 5000 }, 1)
  const records: LineRecord[] = []
  queue.onLine((r) => records.push(r))
  queue.setOpen(true)
  const origin = { site: 's', label: 'A' }
  const slow = queue.submit('a', origin, '300m_slow_', 50)
  const next = queue.submit('b', origin, '_next_')
  const started = Date.now()
  await t.rejects(slow, { code: 'TXTZYME_TIMEOUT' })
  t.ok(Date.now() - started < 250, 'the timeout answered early')
  t.ok(queue.busy, 'the device is still blocked on the slow line')
  t.same(await next, ['next'], 'the next line gets its own output, not the late one')
  t.ok(Date.now() - started >= 280, 'the next line waited for the slow one to finish')
  t.same(
    records.map((r) => [r.line, r.lines, r.timedOut]),
    [
      ['300m_slow_', ['slow'], true],
      ['_next_', ['next'], false],
    ],
    'observers see the late output, marked',
  )
})

t.test('cancel and device loss', async (t) => {
  const { queue, sim } = harness({}, 1)
  queue.setOpen(true)
  const origin = { site: 's', label: 'A' }
  const running = queue.submit('gone', origin, '100m_x_')
  const queued = queue.submit('gone', origin, '_y_')
  const other = queue.submit('stay', origin, '_z_')
  const answered = [
    t.rejects(running, { code: 'TXTZYME_CANCELLED' }, 'the departed client\'s running line is answered as cancelled'),
    t.rejects(queued, { code: 'TXTZYME_CANCELLED' }),
  ]
  queue.cancel('gone')
  await Promise.all(answered)
  t.same(await other, ['z'], 'the running line of a departed client is absorbed; others stay in step')
  await sim.idle()

  const lost = new TxtzymeError('TXTZYME_DEVICE_LOST', 'the Txtzyme device went away')
  queue.setOpen(false)
  const held = [queue.submit('a', origin, '1p'), queue.submit('b', origin, '2p')]
  queue.failAll(lost)
  for (const p of held) await t.rejects(p, { code: 'TXTZYME_DEVICE_LOST', message: /went away/ })
  t.equal(queue.queued, 0)
})
