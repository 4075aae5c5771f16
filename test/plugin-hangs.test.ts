// A plugin whose promises never settle (an event listener, a websocket's onConnect and onClose,
// its close) holds up nothing but itself: edits answer at once, a stuck connection is let go
// when its client leaves, other connections are served, and shutdown is bounded.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { claim, listenLocal, putAction, startFarm } from './fixtures/test-farm.js'
import { eventually, openWs } from './fixtures/ws-client.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-hangs/', import.meta.url))
const HOST = 'a.example'
const CLOSE_TIMEOUT = 200

t.test('listeners, connects, closes that never settle: the farm serves on, and closes in bounded time', async (t) => {
  const farm = await startFarm(t, { farm: true, pluginCloseTimeoutMs: CLOSE_TIMEOUT }, undefined, {
    builtinPluginsDir: PLUGINS,
  })
  t.equal(farm.kernel.plugins.statuses().find((s) => s.name === 'sleepy')?.state, 'running')
  const owner = await claim(t, farm.app, HOST)

  const started = Date.now()
  for (let i = 0; i < 200; i++) {
    const r = await putAction(
      farm.app,
      HOST,
      owner.cookie,
      'busy',
      i === 0
        ? { type: 'create', item: { title: 'Busy' }, date: 1 }
        : {
            type: 'add',
            id: i.toString(16).padStart(16, '0'),
            item: { type: 'paragraph', id: i.toString(16).padStart(16, '0'), text: `${i}` },
            date: i + 1,
          },
    )
    if (r.statusCode !== 200) t.fail(`edit ${i}: ${r.statusCode}`)
  }
  t.ok(Date.now() - started < 10_000, `200 edits with a listener that never returns, in ${Date.now() - started} ms`)

  const port = await listenLocal(farm)
  const stuck = await openWs(port, '/plugin/sleepy/stuck', HOST)
  stuck.send('hello')
  const echo = await openWs(port, '/plugin/sleepy/echo', HOST)
  echo.send('ping')
  t.equal(await echo.next(), 'ping', 'another connection of the same plugin is served')
  t.same(stuck.received, [], 'the stuck connection\'s frames wait for its onConnect')
  stuck.ws.close()
  t.equal((await stuck.waitClose()).code, 1005, 'the client leaves normally')
  await eventually(() => farm.kernel.sockets.size === 1, 2000, 'the stuck connection is let go')
  t.equal(
    (await farm.app.inject({ url: '/plugin/sleepy/ok', headers: { host: HOST } })).statusCode,
    200,
    "the plugin's routes serve",
  )

  const closing = Date.now()
  await farm.kernel.close()
  const took = Date.now() - closing
  t.ok(
    took < 4 * CLOSE_TIMEOUT + 2000,
    `shutdown with a close that never settles took ${took} ms (close timeout ${CLOSE_TIMEOUT} ms)`,
  )
  t.equal((await echo.waitClose()).code, 1001, 'the live connection got 1001')
})
