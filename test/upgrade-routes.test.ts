// A websocket upgrade to a route that is not a websocket gets a 404 with the kernel's coded
// body, before any handshake (@fastify/websocket alone would answer 101 and close at once);
// the push route and plugin sockets upgrade as before.
import t from 'tap'
import { claim, listenLocal, startFarm } from './fixtures/test-farm.js'
import { openWs, refusedUpgrade } from './fixtures/ws-client.js'

const HOST = 'a.example'

t.test('upgrades to plain routes are 404 before the handshake; websocket routes upgrade', async (t) => {
  const farm = await startFarm(t, { farm: true })
  const owner = await claim(t, farm.app, HOST)
  const port = await listenLocal(farm)
  for (const path of [
    '/',
    '/welcome-visitors.json',
    '/welcome-visitors.html',
    '/system/sitemap.json',
    '/system/slugs.json',
    '/sitemap.xml',
    '/favicon.png',
    '/logout',
    '/system/session.json',
    '/system/status.json',
    '/recycler/system/slugs.json',
  ]) {
    const answer = await refusedUpgrade(port, path, HOST, { cookie: owner.cookie })
    t.equal(answer.status, 404, `${path}: no handshake`)
    t.same(JSON.parse(answer.body), {
      error: `No route for websocket ${path}: this route is not a websocket`,
      code: 'WIKIFARM_ERR_ROUTE_NOT_FOUND',
    })
  }
  t.equal((await refusedUpgrade(port, '/no/such/route', HOST)).status, 404, 'an unknown path is 404 as always')
  t.equal(farm.kernel.sockets.size, 0, 'no connection was made')
  for (const path of ['/system/push', '/plugin/linkmap/', '/plugin/linkmap']) {
    const client = await openWs(port, path, HOST)
    t.pass(`${path} upgrades`)
    client.ws.close()
    await client.waitClose()
  }
  t.equal(
    (await farm.app.inject({ url: '/welcome-visitors.json', headers: { host: HOST } })).statusCode,
    200,
    'plain requests are served as before',
  )
})
