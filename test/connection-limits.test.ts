// A visitor cannot hold the farm's connections: a request's headers and body have deadlines
// (Fastify's requestTimeout was 0, and slow headers were cut only after ~62 s), one client
// address may hold only so many open connections (refused ones get a coded 429 and are
// closed at once, and are counted), and reads are rate-limited per address, while another
// address is still served.
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { httpCall } from './fixtures/http-client.js'
import { listenLocal, startFarm } from './fixtures/test-farm.js'
import { openWs } from './fixtures/ws-client.js'

const HOST = 'limits.example'

function open(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress })
    socket.once('connect', () => resolve(socket))
    socket.once('error', reject)
  })
}

/** Resolves with what the server sent and how long after `since` it closed the connection. */
function closed(socket: Socket, since: number): Promise<{ ms: number; text: string }> {
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.on('error', () => {})
  return new Promise((resolve) =>
    socket.once('close', () => resolve({ ms: performance.now() - since, text: Buffer.concat(chunks).toString() })),
  )
}

t.test('a body sent a byte at a time is cut at requestSeconds, slow headers at headerSeconds', async (t) => {
  const farm = await startFarm(t, { farm: true, allowed: [HOST], requestSeconds: 1, headerSeconds: 0.5 })
  const port = await listenLocal(farm)

  const body = await open(port)
  const started = performance.now()
  const bodyDone = closed(body, started)
  body.write(
    `PUT /page/x/action HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`,
  )
  const drip = setInterval(() => { if (!body.destroyed) body.write('{') }, 100)
  const headers = await open(port)
  const headersDone = closed(headers, performance.now())
  const header = `GET /welcome-visitors.json HTTP/1.1\r\nHost: ${HOST}\r\nX-Slow: ${'a'.repeat(100)}`
  let sent = 0
  const headerDrip = setInterval(() => {
    if (!headers.destroyed && sent < header.length) headers.write(header[sent++] as string)
  }, 50)
  const [bodyResult, headerResult] = await Promise.all([bodyDone, headersDone])
  clearInterval(drip)
  clearInterval(headerDrip)
  t.ok(bodyResult.ms < 3000, `the slow body was cut after ${bodyResult.ms.toFixed(0)} ms (requestSeconds 1)`)
  t.match(bodyResult.text, /^HTTP\/1\.1 408/, 'with 408 Request Timeout')
  t.ok(headerResult.ms < 2500, `the slow headers were cut after ${headerResult.ms.toFixed(0)} ms (headerSeconds 0.5)`)

  const fine = await httpCall(port, { path: '/welcome-visitors.json', headers: { host: HOST } })
  t.equal(fine.status, 200, 'a prompt client is served')
})

t.test('the deadlines are for requests: an open websocket outlives every one of them', async (t) => {
  const farm = await startFarm(t, {
    farm: true,
    allowed: [HOST],
    requestSeconds: 0.5,
    headerSeconds: 0.5,
    socketIdleSeconds: 0.5,
    pingIntervalSeconds: 1,
  })
  const port = await listenLocal(farm)
  const client = await openWs(port, '/system/push', HOST)
  let closedAt = 0
  void client.closed.then(() => { closedAt = performance.now() })
  await new Promise((resolve) => setTimeout(resolve, 2500))
  t.equal(closedAt, 0, 'the websocket is open after five times every deadline')
  client.ws.close()
})

t.test('one address holding connectionsPerIp connections is refused more; another address is served', async (t) => {
  const farm = await startFarm(t, { farm: true, allowed: [HOST], connectionsPerIp: 5 })
  const port = await listenLocal(farm)
  const held = await Promise.all(Array.from({ length: 5 }, () => open(port)))
  t.teardown(() => { for (const socket of held) socket.destroy() })
  // The server counts a connection when it accepts it: let it see all five.
  await new Promise((resolve) => setTimeout(resolve, 100))

  const sixth = await open(port)
  const refused = await closed(sixth, performance.now())
  t.match(refused.text, /^HTTP\/1\.1 429/, 'the sixth connection from the address gets 429')
  t.match(refused.text, /"code":"WIKIFARM_ERR_TOO_MANY_CONNECTIONS"/)
  t.ok(refused.ms < 1000, `and is closed at once (${refused.ms.toFixed(0)} ms)`)
  const again = await httpCall(port, { path: '/welcome-visitors.json', headers: { host: HOST } }).catch(
    (err: Error) => err,
  )
  t.ok(again instanceof Error || again.status === 429, 'a request over a new connection from it is refused too')

  const other = await open(port, '127.0.0.2')
  const otherDone = closed(other, performance.now())
  other.write(`GET /welcome-visitors.json HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`)
  t.match((await otherDone).text, /^HTTP\/1\.1 200/, 'another address (127.0.0.2) is served')
  t.ok(farm.kernel.connections.refused >= 2, `refusals are counted (${farm.kernel.connections.refused})`)
  t.equal(farm.kernel.connections.open.get('127.0.0.1'), 5, 'the address holds its five')

  const one = held.pop() as Socket
  one.destroy()
  await once(one, 'close')
  await new Promise((resolve) => setTimeout(resolve, 100))
  const after = await httpCall(port, { path: '/welcome-visitors.json', headers: { host: HOST } })
  t.equal(after.status, 200, 'once one closes, the address is served again')
})

t.test('reads are rate-limited per address', async (t) => {
  const farm = await startFarm(t, { farm: true, allowed: [HOST], readRate: 5 })
  const read = (remoteAddress: string) =>
    farm.app.inject({ url: '/system/site-index.json', headers: { host: HOST }, remoteAddress })
  for (let n = 1; n <= 5; n++) t.equal((await read('10.0.0.1')).statusCode, 200, `read ${n}`)
  const refused = await read('10.0.0.1')
  t.equal(refused.statusCode, 429, 'the sixth read in a minute is refused')
  t.match(refused.json(), { code: 'WIKIFARM_ERR_RATE_LIMITED' })
  t.ok(Number(refused.headers['retry-after']) >= 1, 'with Retry-After')
  t.equal((await read('10.0.0.2')).statusCode, 200, 'another address reads on')
})
