// What the device prints, split into lines in bounded memory and linear time, and one line's
// output capped: the two bounds that keep a broken or busy device from growing the farm.
import t from 'tap'
import { DeviceLineSplitter } from '../plugins/txtzyme/line-splitter.js'
import { LineQueue } from '../plugins/txtzyme/queue.js'

t.test('lines split across chunks, several in a chunk, CR kept for the device layer to strip', async (t) => {
  const s = new DeviceLineSplitter(16)
  t.same(s.push(Buffer.from('ab')), [])
  t.same(s.push(Buffer.from('c\r\nde\nf')), ['abc\r', 'de'])
  t.same(s.push(Buffer.from('\n\n')), ['f', ''])
  t.equal(s.truncated, 0)
})

t.test('a line past the bound keeps its last bytes, and the next line is whole', async (t) => {
  const s = new DeviceLineSplitter(16)
  let early = 0
  for (let i = 0; i < 1000; i++) early += s.push(Buffer.from('0123456789')).length
  t.equal(early, 0, 'no line before its end')
  t.same(s.push(Buffer.from('END\nnext\n')), [`${'0123456789'.repeat(1000)}END`.slice(-16), 'next'])
  t.equal(s.truncated, 1)
})

t.test('64 MiB without a line end: linear time', async (t) => {
  const s = new DeviceLineSplitter()
  const chunk = Buffer.alloc(4096, 'z')
  const started = Date.now()
  for (let i = 0; i < 16 * 1024; i++) s.push(chunk)
  const [line] = s.push(Buffer.from('tail\n'))
  const ms = Date.now() - started
  t.ok(ms < 3000, `in ${ms} ms`)
  t.equal(line?.length, 64 * 1024)
  t.ok(line?.endsWith('zzztail'))
})

t.test(
  'output past maxOutputBytes: TXTZYME_OUTPUT_TOO_LARGE when the sentinel comes, and the next line in step',
  async (t) => {
    const written: string[] = []
    const queue = new LineQueue({
      perSession: 10,
      global: 10,
      timeoutMs: 5000,
      maxOutputBytes: 1024,
      write: (text) => written.push(text),
      nonce: () => `n${written.length}`,
    })
    queue.setOpen(true)
    const origin = { site: 'a.example', label: 'x' }
    const seen: boolean[] = []
    queue.onLine((record) => seen.push(record.truncated))
    const big = queue.submit('k', origin, '2000{_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx_}')
    const next = queue.submit('k', origin, '_next_')
    for (let i = 0; i < 2000; i++) queue.deviceLine('x'.repeat(40))
    queue.deviceLine('n0')
    await t.rejects(big, { code: 'TXTZYME_OUTPUT_TOO_LARGE', message: /more than 1024 bytes/ })
    queue.deviceLine('next')
    queue.deviceLine('n1')
    t.same(await next, ['next'])
    t.same(seen, [true, false], 'observers are told the output was truncated')
  },
)
