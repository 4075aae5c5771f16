// Shutdown: kernel.close() closes every websocket with 1001, then closes the plugins in
// reverse order, each bounded by the close timeout, so a plugin whose close hangs does not
// hold the farm up.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { listenLocal, startFarm } from './fixtures/test-farm.js'
import { openWs } from './fixtures/ws-client.js'
import { probe, resetProbe } from './fixtures/plugin-probe.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-shutdown/', import.meta.url))
const CLOSE_TIMEOUT = 150

t.test('close: sockets get 1001, then plugins close in reverse order, each bounded', async (t) => {
  resetProbe()
  const farm = await startFarm(t, { farm: true, pluginCloseTimeoutMs: CLOSE_TIMEOUT }, undefined, {
    builtinPluginsDir: PLUGINS,
  })
  const port = await listenLocal(farm)
  const names = farm.kernel.plugins.statuses().map((s) => s.name)
  t.same(names, ['first', 'second', 'third'], 'registered in this order')
  const clients = await Promise.all(
    ['a.example', 'b.example'].flatMap((host) => names.map((name) => openWs(port, `/plugin/${name}/`, host))),
  )
  await Promise.all(clients.map((c) => c.next()))
  t.equal(farm.kernel.sockets.size, 6)

  const started = Date.now()
  await farm.kernel.close()
  const took = Date.now() - started
  // third's connection close handlers hang (one timeout), then its close() does (another).
  t.ok(took < 2 * CLOSE_TIMEOUT + 1500, `hanging close handlers held shutdown only for their timeouts (${took} ms)`)
  t.ok(took >= 2 * CLOSE_TIMEOUT - 10, 'and shutdown did wait that long for them')

  const closes = await Promise.all(clients.map((c) => c.waitClose()))
  t.same(closes, clients.map(() => ({ code: 1001, reason: 'server shutting down' })), 'every client saw 1001')
  const pluginCloses = probe.log.filter((l) => l.startsWith('close:'))
  t.same(pluginCloses, ['close:third', 'close:second', 'close:first'], 'plugins closed in reverse order')
  const socketCloses = probe.log.filter((l) => l.startsWith('socket-closed:'))
  t.equal(socketCloses.length, 6, 'every plugin heard its connections close')
  t.ok(socketCloses.every((l) => l.endsWith(':1001')), 'with 1001')
  const lastSocket = Math.max(...socketCloses.map((l) => probe.log.indexOf(l)))
  t.ok(lastSocket < probe.log.indexOf('close:third'), 'before any plugin was closed', { log: probe.log })
  t.same(farm.kernel.plugins.statuses().map((s) => s.state), ['stopped', 'stopped', 'stopped'])
  t.equal(farm.kernel.sockets.size, 0)

  await farm.kernel.close()
  t.same(probe.log.filter((l) => l.startsWith('close:')), pluginCloses, 'closing twice closes no plugin twice')
})

t.test('a client that never answers the close handshake holds shutdown only for the close timeout', async (t) => {
  resetProbe()
  const farm = await startFarm(t, { farm: true, pluginCloseTimeoutMs: CLOSE_TIMEOUT }, undefined, {
    builtinPluginsDir: PLUGINS,
  })
  const port = await listenLocal(farm)
  const deaf = await openWs(port, '/plugin/first/', 'a.example')
  await deaf.next()
  deaf.ws.pause()
  const started = Date.now()
  await farm.kernel.close()
  const took = Date.now() - started
  // The peer is cut off after the close timeout, then third's hanging close takes one more.
  t.ok(took < 3 * CLOSE_TIMEOUT + 1000, `shutdown took ${took} ms`)
  t.ok(took >= 2 * CLOSE_TIMEOUT - 10, 'it waited for the peer, then for third\'s close')
  t.ok(probe.log.indexOf('socket-closed:first:1006') >= 0, 'the peer was cut off', { log: probe.log })
  t.ok(probe.log.indexOf('socket-closed:first:1006') < probe.log.indexOf('close:first'), 'before its plugin closed')
  deaf.ws.resume()
  t.equal((await deaf.waitClose()).code, 1001, 'what it had not read yet was the 1001 close')
})
