// The device layer over a real pty with the simulator in a child process: open and sync,
// lines through the queue, unplug (the simulator killed) fails queued lines and moves to lost,
// plugging it back brings ready again; discovery when nothing is attached.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openPtyPair, serveSimulator } from '../plugins/txtzyme/pty.js'
import { TxtzymeDevice, discover, type DeviceState } from '../plugins/txtzyme/device.js'
import { LineQueue } from '../plugins/txtzyme/queue.js'
import { CHIP_NAME } from '../plugins/txtzyme/simulator.js'
import { simulatedDevice, needSocat } from './fixtures/txtzyme-device.js'
import { eventually } from './fixtures/ws-client.js'

function makeDevice(path: string | undefined, devDir?: string) {
  let device: TxtzymeDevice | null = null
  const queue = new LineQueue({ perSession: 100, global: 1000, timeoutMs: 5000, write: (text) => device?.write(text) })
  device = new TxtzymeDevice(queue, {
    path,
    devDir,
    syncTimeoutMs: 2000,
    backoffMinMs: 50,
    backoffMaxMs: 400,
    stallMs: 10_000,
    heartbeatMs: 100,
  })
  return device
}

t.test('discovery names where it looked', async (t) => {
  const root = t.testdir({ empty: {}, dev: { ttyACM3: '', ttyACM1: '', ttyS0: '' } })
  const empty = `${root}/empty`
  const none = await discover(undefined, empty)
  t.equal(none.path, null)
  t.match(none.looked.join(', '), /16C0:047A.*ttyACM\*/)
  const dev = `${root}/dev`
  t.match((await discover(undefined, dev)).path, /ttyACM1$/, 'falls back to scanning for ttyACM*')
  t.same(await discover('/dev/ttyX', empty), { path: '/dev/ttyX', looked: ['/dev/ttyX'] })
  const device = makeDevice(undefined, empty)
  await t.rejects(device.start(), /no Txtzyme device attached \(looked at .*ttyACM/)
  await device.close()
})

t.test('open, sync, run, unplug, replug', async (t) => {
  if (!(await needSocat(t))) return
  const sim = await simulatedDevice(t, { speed: 20 })
  const device = makeDevice(sim.path)
  t.teardown(() => device.close())
  const states: DeviceState[] = []
  device.onState((s) => states.push(s.state))
  await device.start()
  t.same(states, ['opening', 'syncing', 'ready'])
  t.equal(device.status().chip, CHIP_NAME, 'the sync asks v')
  const origin = { site: 'a.example', label: 'x' }
  t.same(await device.submit('k', origin, '3{kp}_ok_'), ['2', '1', '0', 'ok'])

  // A long line on the device and more waiting: unplug fails them all with a clear error.
  const running = device.submit('k', origin, '2000m_never_')
  const waiting = device.submit('j', origin, '_waiting_')
  const failed = Promise.all([
    t.rejects(running, { code: 'TXTZYME_DEVICE_LOST', message: /went away/ }, 'the line on the device fails'),
    t.rejects(waiting, { code: 'TXTZYME_DEVICE_LOST', message: /queued lines were dropped/ }, 'the waiting line fails'),
  ])
  await new Promise((r) => setTimeout(r, 50))
  const unplugged = Date.now()
  await sim.unplug()
  await failed
  t.ok(Date.now() - unplugged < 1500, 'the loss is noticed within the heartbeat')
  await eventually(() => device.status().state !== 'ready', 3000, 'not ready after unplug')
  t.ok(states.includes('lost'), 'the device was lost')
  await t.rejects(
    device.submit('k', origin, '_held_'),
    { code: 'TXTZYME_NOT_READY', message: /device is (lost|absent|opening|syncing)/ },
    'refused while away',
  )

  await sim.plug()
  await eventually(() => device.status().state === 'ready', 5000, 'ready again after replug')
  t.equal(device.status().reconnects, 1)
  t.same(await device.submit('k', origin, '_back_'), ['back'], 'lines flow again, in step')
})

t.test('a device that prints garbage: absorbed, replies stay in step', async (t) => {
  if (!(await needSocat(t))) return
  const dir = mkdtempSync(join(tmpdir(), 'txtzyme-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const pair = await openPtyPair(join(dir, 'dev'), join(dir, 'sim'))
  t.teardown(() => pair.close())
  const served = await serveSimulator(pair.simulatorPath, { speed: 10 })
  t.teardown(() => served.close())
  served.port.write('noise before the sync\r\n\u0001\u00ff partial')
  const device = makeDevice(pair.devicePath)
  t.teardown(() => device.close())
  await device.start()
  t.equal(device.status().chip, CHIP_NAME, 'the sync skips what the device printed before')
  const origin = { site: 'a.example', label: 'x' }
  t.same(await device.submit('k', origin, '_one_'), ['one'])
  served.port.write('stray line\r\n')
  await eventually(() => device.queue.stray >= 1, 2000, 'the stray line is counted')
  t.same(await device.submit('k', origin, '_two_'), ['two'], 'the next reply is its own')
  served.port.write('half a line, then ')
  t.same(
    await device.submit('k', origin, '_three_'),
    ['half a line, then three'],
    "garbage during a line is that line's output",
  )
  t.same(await device.submit('k', origin, '_four_'), ['four'])
})

t.test('a line that never ends: the device is reopened and resynced', async (t) => {
  if (!(await needSocat(t))) return
  const sim = await simulatedDevice(t, { speed: 1 })
  let device: TxtzymeDevice | null = null
  const queue = new LineQueue({ perSession: 10, global: 10, timeoutMs: 5000, write: (text) => device?.write(text) })
  device = new TxtzymeDevice(queue, {
    path: sim.path,
    syncTimeoutMs: 300,
    backoffMinMs: 50,
    backoffMaxMs: 200,
    stallMs: 300,
    heartbeatMs: 50,
  })
  const dev = device
  t.teardown(() => dev.close())
  const states: DeviceState[] = []
  dev.onState((s) => states.push(s.state))
  await dev.start()
  const origin = { site: 'a.example', label: 'x' }
  await t.rejects(dev.submit('k', origin, '1200m_late_'), {
    code: 'TXTZYME_DEVICE_LOST',
    message: /no end of output for \d+ ms/,
  })
  await eventually(() => dev.status().state === 'ready', 5000, 'ready again once the device answers a sync')
  t.ok(states.includes('lost'), 'the hang counted as a loss')
  t.same(await dev.submit('k', origin, '_after_'), ['after'], 'the late output of the hung line went to nobody')
})
