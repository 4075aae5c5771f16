// Websocket frames to an isolated plugin cross without a round trip each (docs/architecture.md,
// "The isolation channel"), and nothing a client can see changes: in every mode a connection's
// frames are handled one at a time, in order; a failed handler's error reaches the client in its
// place among the replies, answering its envelope's id; a held handler holds the connection's
// later frames (the kernel keeps at most a window of them in the plugin) until it finishes.
import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { http, listenLocal, startFarm } from './fixtures/test-farm.js'
import { eventually, openWs } from './fixtures/ws-client.js'
import { ISOLATION_MODES, WS_WINDOW, type IsolationMode } from '../core/plugin-host/isolation/channel.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-pipeline/', import.meta.url))
const A = 'a.example'
const FAILED = { error: 'the plugin failed to handle this message', code: 'WIKIFARM_ERR_PLUGIN_FAILED' }

async function pipeFarm(t: Test, mode: IsolationMode) {
  const farm = await startFarm(t, { farm: true, plugins: { piper: { isolation: mode } } }, undefined,
    { builtinPluginsDir: PLUGINS })
  const port = await listenLocal(farm)
  return { ...farm, port }
}

/** Frames of every kind, interleaved: answered at once, later, failing. */
function frames(count: number): string[] {
  const kinds = ['now', 'later', 'now', 'fail', 'now', 'now', 'later']
  return Array.from({ length: count }, (_, i) => `${kinds[i % kinds.length]}${i}`)
}

for (const mode of ISOLATION_MODES) {
  t.test(`${mode}: pipelined text frames are answered in order, failures in their place`, async (t) => {
    const farm = await pipeFarm(t, mode)
    const ws = await openWs(farm.port, '/plugin/piper/text', A)
    const sent = [...frames(300), 'cycle']
    for (const frame of sent) ws.send(frame)
    const expected = sent.flatMap((frame) => frame.startsWith('fail') ? [`error ${FAILED.code}: ${FAILED.error}`]
      : frame === 'cycle' ? ['echo [object Object]', 'echo cycle'] : [`echo ${frame}`])
    await eventually(() => ws.received.length >= expected.length, 10_000, 'every answer arrives')
    t.same(ws.received, expected, 'in the order sent, each failure in its place')
    t.same(JSON.parse((await http(farm.port, 'GET', '/plugin/piper/most', A)).body), { mostAtOnce: 1 },
      'one handler at a time')
    ws.ws.close()
  })

  t.test(`${mode}: pipelined json frames: replies and error envelopes answer their ids, in order`, async (t) => {
    const farm = await pipeFarm(t, mode)
    const ws = await openWs(farm.port, '/plugin/piper/json', A)
    const sent = [...frames(200), 'cycle', 'now-last']
    sent.forEach((data, i) => ws.send({ type: 'say', id: `m${i}`, data }))
    const expected = sent.map((data, i) => data.startsWith('fail') || data === 'cycle'
      ? { type: 'error', id: `m${i}`, data: FAILED }
      : { type: 'echo', id: `m${i}`, data })
    await eventually(() => ws.received.length >= expected.length, 10_000, 'every answer arrives')
    t.same(ws.received.map((text) => JSON.parse(text) as unknown), expected)
    ws.ws.close()
  })

  t.test(`${mode}: a held handler holds the frames after it, beyond the window, until it finishes`, async (t) => {
    const farm = await pipeFarm(t, mode)
    const ws = await openWs(farm.port, '/plugin/piper/text', A)
    const later = Array.from({ length: WS_WINDOW * 3 }, (_, i) => `now${i}`)
    ws.send('hold')
    for (const frame of later) ws.send(frame)
    await new Promise((resolve) => setTimeout(resolve, 300))
    t.same(ws.received, [], 'nothing is answered while the first frame is handled')
    await eventually(async () =>
      (JSON.parse((await http(farm.port, 'POST', '/plugin/piper/release', A, {
        headers: { 'content-type': 'application/json', origin: `http://${A}` }, body: '{}',
      })).body) as { released: boolean }).released, 5000, 'the held handler is released')
    await eventually(() => ws.received.length >= later.length + 1, 10_000, 'then every frame is answered')
    t.same(ws.received, ['echo hold', ...later.map((frame) => `echo ${frame}`)], 'in order')
    ws.ws.close()
  })
}
