// The Txtzyme simulator: the firmware's commands, its line buffer and timing, then the same
// simulator over a real pty pair with the real serialport binding.
import t from 'tap'
import { SerialPort, ReadlineParser } from 'serialport'
import { TxtzymeSimulator, CHIP_NAME, LINE_BUFFER } from '../plugins/txtzyme/simulator.js'
import { simulatedDevice, needSocat } from './fixtures/txtzyme-device.js'

async function runLines(
  text: string,
  setup?: (sim: TxtzymeSimulator) => void,
  speed = 1000,
): Promise<{ out: string; sim: TxtzymeSimulator }> {
  let out = ''
  const sim = new TxtzymeSimulator({
    speed,
    output: (s) => {
      out += s
    },
  })
  setup?.(sim)
  sim.input(text)
  await sim.idle()
  return { out, sim }
}

t.test('numbers, p, text and CRLF', async (t) => {
  t.equal((await runLines('42p\n')).out, '42\r\n')
  t.equal((await runLines('1p2p 3p\r')).out, '1\r\n2\r\n3\r\n', 'several per line; CR ends a line')
  t.equal((await runLines('70000p\n')).out, `${70000 & 0xffff}\r\n`, 'x is 16 bits')
  t.equal((await runLines('_hello world_\n')).out, 'hello world\r\n')
  t.equal((await runLines('_unterminated\n')).out, 'unterminated\r\n', 'text runs to the end of the line')
  t.equal((await runLines('xyz!?p\n')).out, '0\r\n', 'unknown characters are ignored')
  t.equal((await runLines('\n\n5p\n')).out, '5\r\n', 'empty lines do nothing')
  t.equal((await runLines('v\n')).out, `${CHIP_NAME}\r\n`)
  t.match((await runLines('h\n')).out, /^Txtzyme/)
})

t.test('loops and k', async (t) => {
  t.equal((await runLines('3{kp}\n')).out, '2\r\n1\r\n0\r\n', 'the body runs x times, k counts down')
  t.equal((await runLines('0{_no_}_done_\n')).out, 'done\r\n', 'zero times')
  t.equal((await runLines('2{_a_}_b_\n')).out, 'a\r\na\r\nb\r\n')
})

t.test('pins, analog and pulses', async (t) => {
  t.equal((await runLines('1d1o1di p\n')).out, '1\r\n', 'reading back a pin written high')
  t.equal((await runLines('3b0o 3bip\n')).out, '0\r\n')
  const { out, sim } = await runLines('6b1o\n2cip\n', (s) => { s.inputs[2] = 1 << 2 })
  t.equal(out, '1\r\n', 'an input pin reads the simulated level')
  t.equal((sim.outputs[1] ?? 0) & (1 << 6), 1 << 6, 'b6 is high')
  t.equal((await runLines('10cip\n', (s) => { s.inputs[2] = 1 << 2 })).out, '1\r\n', 'pin is x % 8')
  t.equal((await runLines('3sp\n', (s) => { s.analog[3] = 777 })).out, '777\r\n')
  t.equal((await runLines('1btp\n', (s) => { s.pulses.set('1:1', 1500) })).out, '1500\r\n')
})

t.test('line buffer and delays', async (t) => {
  const long = `_${'x'.repeat(LINE_BUFFER + 100)}_\n`
  const { out } = await runLines(long)
  t.equal(out, `${'x'.repeat(LINE_BUFFER - 2)}\r\n`, 'only 1023 characters are kept')
  t.equal((await runLines('_a\u0007b\u00e9c_\n')).out, 'abc\r\n', 'non-printable characters are dropped')
  const start = Date.now()
  const timed = await runLines('200m_late_\n', undefined, 2)
  t.equal(timed.out, 'late\r\n')
  t.ok(Date.now() - start >= 90, 'a 200 ms delay at speed 2 takes about 100 ms')
  const quick = Date.now()
  await runLines('10000m\n', undefined, 1000)
  t.ok(Date.now() - quick < 200, 'the speed factor shortens delays')
  const fine = Date.now()
  await runLines('100{500u}_x_\n', undefined, 1)
  t.ok(Date.now() - fine >= 40, 'microsecond delays add up')
})

t.test('over a real pty, with the real serialport', async (t) => {
  if (!(await needSocat(t))) return
  const device = await simulatedDevice(t, { speed: 10 })
  const port = new SerialPort({ path: device.path, baudRate: 9600, autoOpen: false })
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())))
  t.teardown(() => new Promise<void>((resolve) => { if (port.isOpen) port.close(() => resolve()); else resolve() }))
  const lines: string[] = []
  port.pipe(new ReadlineParser({ delimiter: '\r\n' })).on('data', (line: string) => lines.push(line))
  port.write('v\n3{kp}_end_\n')
  const until = Date.now() + 5000
  while (lines.length < 5 && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
  t.same(lines, [CHIP_NAME, '2', '1', '0', 'end'])
})
