// A url may carry a plain declaration and a wikifarm.v1 one: the subprotocol the client
// offers picks which serves it, so a legacy text path and the JSON envelope share one url.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { startFarm, listenLocal } from './fixtures/test-farm.js'
import { openWs } from './fixtures/ws-client.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-protocols/', import.meta.url))

t.test('the offered subprotocol chooses the declaration', async (t) => {
  const farm = await startFarm(t, { farm: true }, undefined, { builtinPluginsDir: PLUGINS })
  const port = await listenLocal(farm)
  const plain = await openWs(port, '/plugin/dual', 'a.example')
  t.equal(await plain.next(), 'plain hello', 'a plain client gets the text declaration')
  t.equal(plain.ws.protocol, '')
  const modern = await openWs(port, '/plugin/dual', 'a.example', { protocols: ['wikifarm.v1'] })
  t.same(await modern.nextJson(), { type: 'hello', data: 'wikifarm.v1' }, 'a v1 client gets the json declaration')
  const refused = await openWs(port, '/plugin/dual/v1-only', 'a.example').then(() => null, (err: Error) => err)
  t.match(refused?.message, /404/, 'a url declared only for wikifarm.v1 refuses plain clients before the upgrade')
  const v1only = await openWs(port, '/plugin/dual/v1-only', 'a.example', { protocols: ['wikifarm.v1'] })
  t.same(await v1only.nextJson(), { type: 'hello' })
  for (const c of [plain, modern, v1only]) c.ws.close()
})

t.test('two declarations for the same url and protocol are refused at launch', async (t) => {
  const farm = await startFarm(t, { farm: true }, undefined, {
    builtinPluginsDir: fileURLToPath(new URL('./fixtures/plugins-protocols-twice/', import.meta.url)),
  })
  const status = farm.kernel.plugins.statuses().find((s) => s.name === 'twice')
  t.equal(status?.state, 'failed')
  t.match(status?.reason, /socket \/: declared twice for wikifarm\.v1/)
})
