// What an operator reads in the log about the Txtzyme device: a device that is absent at boot
// is reported once and then retried quietly; unplugged and found again are each one line with
// the device path, however many reconnect attempts happen between them.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { createKernel, type Kernel } from '../core/kernel.js'
import { DEFAULTS } from '../core/farm-config.js'
import { COOKIE_SECRET } from './fixtures/test-farm.js'
import { eventually } from './fixtures/ws-client.js'
import { needSocat, simulatedDevice } from './fixtures/txtzyme-device.js'

const PLUGINS = fileURLToPath(new URL('../plugins/', import.meta.url))

interface LogLine { level: number; msg: string; plugin?: string; path?: string; reason?: string }
const WARN = 40
const INFO = 30

t.test('absent at boot: one warning, quiet retries; unplug and replug: one line each', async (t) => {
  if (!(await needSocat(t))) return
  const sim = await simulatedDevice(t, { speed: 10, plug: false })
  const lines: LogLine[] = []
  const stream = { write: (line: string) => { lines.push(JSON.parse(line) as LogLine) } }
  let kernel: Kernel | undefined
  t.teardown(async () => { await kernel?.close() })
  kernel = await createKernel({
    ...DEFAULTS, data: t.testdir(), farm: true, cookieSecret: COOKIE_SECRET, cookieSecretIsRandom: false,
    plugins: { txtzyme: { options: { device: sim.path, backoffMinMs: 20, backoffMaxMs: 40, heartbeatMs: 20 } } },
  }, { logger: { level: 'debug', stream }, builtinPluginsDir: PLUGINS })
  const txtzyme = (): LogLine[] => lines.filter((l) => l.plugin === 'txtzyme')
  const status = () => kernel?.plugins.statuses().find((s) => s.name === 'txtzyme')

  // Unavailable at boot; the plugin asks to be retried every 2 s: wait for two retries.
  await eventually(
    () => txtzyme().filter((l) => l.msg === 'plugin still unavailable').length >= 2,
    10_000,
    'two quiet retries',
  )
  t.equal(txtzyme().filter((l) => l.level >= WARN).length, 1, 'the absent device is one warning')
  t.match(txtzyme().find((l) => l.level >= WARN), { msg: 'plugin unavailable', reason: new RegExp(sim.path) })

  await sim.plug()
  // Retries back off (2 s, 4 s, 8 s): the third comes within 10 s.
  await eventually(() => status()?.state === 'running', 12_000, 'launched by a retry')
  const before = txtzyme().length

  await sim.unplug()
  // The device reconnects every 20-40 ms: let many attempts fail before it comes back.
  await eventually(
    () => txtzyme().filter((l, i) => i >= before && l.msg === 'Txtzyme device opening').length >= 5,
    5000,
    'attempts',
  )
  await sim.plug()
  await eventually(() => txtzyme().some((l) => l.msg === 'Txtzyme device found again and ready'), 5000, 'found again')
  const after = txtzyme().slice(before)
  const gone = after.filter((l) => l.level >= WARN)
  t.equal(gone.length, 1, 'unplugged: one warning, not one per reconnect attempt')
  t.match(gone[0], { msg: /unplugged/, path: sim.path, reason: /went away/ })
  const back = after.filter((l) => l.level === INFO)
  t.equal(back.length, 1, 'found again: one line')
  t.match(back[0], { msg: 'Txtzyme device found again and ready', path: sim.path })
})
