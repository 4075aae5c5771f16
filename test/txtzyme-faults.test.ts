// Device faults through the whole farm, over real ptys with the simulator: 100 unplug/replug
// cycles while clients send lines throughout; a device that stops answering in the middle of
// a line; a device that prints garbage, endless lines and huge outputs. Every request is
// answered (its output, a timeout or a device error), no client ever gets another's output,
// lines flow again after recovery, and memory stays bounded.
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { openPtyPair, serveSimulator, type PtyPair, type ServedSimulator } from '../plugins/txtzyme/pty.js'
import { listenLocal, startFarm } from './fixtures/test-farm.js'
import { eventually, openWs, type WsClient } from './fixtures/ws-client.js'
import { needSocat } from './fixtures/txtzyme-device.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
function heapMiB(): number {
  gc()
  gc()
  const m = process.memoryUsage()
  return (m.heapUsed + m.arrayBuffers) / 1024 / 1024
}

/** A pty whose far end the test plugs and unplugs: the simulator runs in this process. */
function pluggable(t: Test, speed: number) {
  const dir = mkdtempSync(join(tmpdir(), 'txtzyme-faults-'))
  const devicePath = join(dir, 'device')
  let pair: PtyPair | null = null
  let sim: ServedSimulator | null = null
  const unplug = async () => {
    const s = sim
    const p = pair
    sim = null
    pair = null
    await s?.close()
    await p?.close()
  }
  t.teardown(async () => { await unplug(); rmSync(dir, { recursive: true, force: true }) })
  return {
    devicePath,
    get sim() { return sim },
    async plug() {
      pair = await openPtyPair(devicePath, join(dir, 'sim'))
      sim = await serveSimulator(pair.simulatorPath, { speed })
    },
    unplug,
  }
}

const ANSWERS = new Set(['output', 'error'])
const DEVICE_ERRORS = new Set(['TXTZYME_DEVICE_LOST', 'TXTZYME_NOT_READY', 'TXTZYME_TIMEOUT'])

interface Reply { type: string; id?: string; data?: { lines?: string[]; code?: string } }

/** Sends a line and waits for the answer to it (other messages, such as states, are skipped). */
async function ask(client: WsClient, id: string, line: string, ms = 5000): Promise<Reply> {
  client.send({ type: 'run', id, data: line })
  for (;;) {
    const m = await client.nextJson<Reply>(ms)
    if (m.id === id && ANSWERS.has(m.type)) return m
    if (m.id !== undefined && m.id !== id) throw new Error(`an answer to ${m.id} while waiting for ${id}`)
  }
}

async function txtzymeFarm(t: Test, devicePath: string, options: Record<string, unknown> = {}) {
  const farm = await startFarm(t, {
    farm: true,
    plugins: {
      txtzyme: {
        options: {
          device: devicePath, openToVisitors: true, backoffMinMs: 10, backoffMaxMs: 40, heartbeatMs: 20,
          syncTimeoutMs: 300, timeoutMs: 1000, ...options,
        },
      },
    },
  })
  const port = await listenLocal(farm)
  const status = () => farm.kernel.plugins.statuses().find((s) => s.name === 'txtzyme')
  const device = async () =>
    (await farm.app.inject({ url: '/plugin/txtzyme/status', headers: { host: 'a.example' } })).json() as {
      state: string
      reconnects: number
    }
  return { farm, port, status, device }
}

t.test('100 unplug/replug cycles with four clients sending lines throughout', async (t) => {
  if (!(await needSocat(t))) return
  const dev = pluggable(t, 1e6)
  await dev.plug()
  const { port, status, device } = await txtzymeFarm(t, dev.devicePath)
  t.equal(status()?.state, 'running')
  const clients = await Promise.all(
    ['a.example', 'a.example', 'b.example', 'c.example'].map((host) => openWs(port, '/plugin/txtzyme/v1', host)),
  )
  t.teardown(() => { for (const c of clients) c.ws.terminate() })

  let stop = false
  const tally = { output: 0, errors: new Map<string, number>(), crossTalk: [] as string[], unanswered: 0 }
  const senders = clients.map(async (client, c) => {
    for (let n = 0; !stop; n++) {
      const text = `c${c}-${n}`
      const answer = await ask(client, `${c}.${n}`, `_${text}_`).catch(() => null)
      if (!answer) { tally.unanswered++; continue }
      if (answer.type === 'output') {
        tally.output++
        if (JSON.stringify(answer.data?.lines) !== JSON.stringify([text]))
          tally.crossTalk.push(`${text}: ${JSON.stringify(answer.data?.lines)}`)
      } else {
        const code = answer.data?.code ?? 'none'
        tally.errors.set(code, (tally.errors.get(code) ?? 0) + 1)
        // Asking again at once only spins while the device is away.
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    }
  })

  let heapAt10 = 0
  const cycles = Number(process.env.WIKIFARM_UNPLUG_CYCLES ?? 100)
  for (let cycle = 1; cycle <= cycles; cycle++) {
    await eventually(async () => (await device()).state === 'ready', 5000, `ready in cycle ${cycle}`)
    const before = tally.output
    await eventually(() => tally.output > before, 5000, `lines flow in cycle ${cycle}`)
    await dev.unplug()
    await eventually(async () => (await device()).state !== 'ready', 5000, `the loss is seen in cycle ${cycle}`)
    await dev.plug()
    if (cycle === 10) heapAt10 = heapMiB()
  }
  await eventually(async () => (await device()).state === 'ready', 5000, 'ready at the end')
  stop = true
  await Promise.all(senders)
  const heapAtEnd = heapMiB()

  t.comment(
    `${tally.output} outputs; device errors ${JSON.stringify(Object.fromEntries(tally.errors))}; reconnects ` +
      `${(await device()).reconnects}`,
  )
  t.equal(tally.unanswered, 0, 'every request was answered')
  t.same(tally.crossTalk, [], 'every output was the asker\'s own')
  t.ok(
    [...tally.errors.keys()].every((code) => DEVICE_ERRORS.has(code)),
    `errors are device errors only: ${[...tally.errors.keys()].join(', ')}`,
  )
  t.ok((await device()).reconnects >= cycles, `the device came back ${cycles} times`)
  t.ok(
    heapAtEnd - heapAt10 < 16,
    `memory stable: ${heapAt10.toFixed(1)} MiB after 10 cycles, ${heapAtEnd.toFixed(1)} MiB after ${cycles}`,
  )
  for (const [c, client] of clients.entries()) {
    t.same(
      (await ask(client, `final-${c}`, `_final ${c}_`)).data?.lines,
      [`final ${c}`],
      `client ${c} is served after the last replug`,
    )
  }
  t.equal(status()?.state, 'running', 'the plugin never stopped running')
})

t.test(
  'a device that stops answering mid-line: timeout, then lost; a live device brings lines back, in step',
  async (t) => {
    if (!(await needSocat(t))) return
    const dev = pluggable(t, 1)
    await dev.plug()
    const { port, device } = await txtzymeFarm(t, dev.devicePath, { timeoutMs: 200, stallMs: 400 })
    const client = await openWs(port, '/plugin/txtzyme/v1', 'a.example')
    const other = await openWs(port, '/plugin/txtzyme/v1', 'b.example')
    t.teardown(() => {
      client.ws.terminate()
      other.ws.terminate()
    })
    t.same((await ask(client, 'warm', '_warm_')).data?.lines, ['warm'])

    // The device prints the first half, then goes silent for good while it runs a long delay.
    client.send({ type: 'run', id: 'half', data: '_first half_300m_second half_' })
    const queued = ask(other, 'queued', '_queued_', 5000)
    await new Promise((resolve) => setTimeout(resolve, 100))
    dev.sim?.simulator.stop()
    const half = await (async () => {
      for (;;) {
        const m = await client.nextJson<Reply>(5000)
        if (m.id === 'half') return m
      }
    })()
    t.match(half, { type: 'error', data: { code: 'TXTZYME_TIMEOUT' } }, 'the requester gets a timeout')
    t.match(
      await queued,
      { type: 'error', data: { code: 'TXTZYME_DEVICE_LOST' } },
      'the line waiting behind it fails when the hang counts as a loss',
    )
    await eventually(async () => (await device()).state !== 'ready', 3000, 'the silent device is not ready')
    t.match(
      await ask(other, 'away', '_away_'),
      { type: 'error', data: { code: 'TXTZYME_NOT_READY' } },
      'refused while the device says nothing',
    )

    // A device that answers again (replugged, or reset) is synced and used.
    await dev.unplug()
    await dev.plug()
    await eventually(async () => (await device()).state === 'ready', 5000, 'ready once a device answers the sync')
    t.same(
      (await ask(client, 'again', '_again_')).data?.lines,
      ['again'],
      'the requester is served again, with its own output',
    )
    t.same(
      (await ask(other, 'other', '_other_')).data?.lines,
      ['other'],
      'and so is the other client: no stale half line anywhere',
    )
  },
)

t.test('garbage, an endless line and huge outputs: bounded memory, answers stay in step', async (t) => {
  if (!(await needSocat(t))) return
  const dev = pluggable(t, 1e6)
  await dev.plug()
  const { farm, port, device } = await txtzymeFarm(t, dev.devicePath, { timeoutMs: 5000 })
  const client = await openWs(port, '/plugin/txtzyme/v1', 'a.example')
  t.teardown(() => client.ws.terminate())
  t.same((await ask(client, 'warm', '_warm_')).data?.lines, ['warm'])
  const heapBefore = heapMiB()

  // 32 MiB without a line ending, between lines: a broken device streaming noise.
  const sim = dev.sim
  if (!sim) throw new Error('no simulator')
  const noise = Buffer.alloc(1024 * 1024, 'z')
  for (let i = 0; i < 32; i++) {
    await new Promise<void>((resolve) => sim.port.write(noise, () => resolve()))
  }
  await new Promise<void>((resolve) => sim.port.drain(() => resolve()))
  await new Promise((resolve) => setTimeout(resolve, 200))
  const heapAfterNoise = heapMiB()
  t.ok(
    heapAfterNoise - heapBefore < 8,
    `32 MiB of noise without a line end held ${(heapAfterNoise - heapBefore).toFixed(1)} MiB`,
  )
  const after = await ask(client, 'after-noise', '_after noise_', 10_000)
  t.match(after, { type: 'output' }, 'the next line is answered')
  // The noise had no line end, so it runs into the line's first output line, cut to its tail.
  const last = after.data?.lines?.at(-1) ?? ''
  t.ok(
    last.endsWith('zzzafter noise') && last.length <= 64 * 1024,
    `its own output comes last, after at most 64 KiB of the noise (${last.length} characters)`,
  )
  t.same((await ask(client, 'clean', '_clean_')).data?.lines, ['clean'], 'and the one after is exactly its own')

  // A line whose output is huge: 20,000 lines of 900 characters (18 MB).
  const text = 'x'.repeat(900)
  const huge = await ask(client, 'huge', `20000{_${text}_}`, 30_000)
  t.match(
    huge,
    { type: 'error', data: { code: 'TXTZYME_OUTPUT_TOO_LARGE' } },
    'a huge output is refused with a code, not buffered',
  )
  const heapAfterHuge = heapMiB()
  t.ok(heapAfterHuge - heapBefore < 16, `memory after the huge output: +${(heapAfterHuge - heapBefore).toFixed(1)} MiB`)
  t.same((await ask(client, 'in-step', '_in step_', 10_000)).data?.lines, ['in step'], 'the device is still in step')
  const rest = await farm.app.inject({
    method: 'POST', url: '/plugin/txtzyme/run', headers: { host: 'a.example', 'content-type': 'application/json' },
    payload: { line: `5000{_${text}_}` },
  })
  t.equal(rest.statusCode, 502, 'over REST the same refusal is a 502')
  t.match(rest.json(), { code: 'TXTZYME_OUTPUT_TOO_LARGE', error: /more than 1048576 bytes/ })
  t.same((await ask(client, 'in-step-2', '_in step_', 10_000)).data?.lines, ['in step'], 'and still in step')
  t.equal((await device()).state, 'ready')
})
