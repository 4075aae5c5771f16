// The websocket baseline: raw `ws` on a plain http server, no routing, no envelopes checked.
// It accepts every upgrade; a text frame {"type":"subscribe"} is answered {"type":"subscribed"}
// and POST /publish {"n"} sends {"type":"published","data":{"value":{n, at}}} to every
// subscriber, `at` stamped just before the loop, as bench-push does. Prints its port.
import { createServer } from 'node:http'
import { WebSocketServer, type WebSocket } from 'ws'

const subscribers = new Set<WebSocket>()
const server = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/publish') {
    res.writeHead(404).end()
    return
  }
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    const { n } = JSON.parse(Buffer.concat(chunks).toString()) as { n: number }
    const at = performance.timeOrigin + performance.now()
    const frame = JSON.stringify({ type: 'published', data: { key: 'bench', value: { n, at } } })
    for (const ws of subscribers) ws.send(frame)
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ reached: subscribers.size, at }))
  })
})
const wss = new WebSocketServer({ server, maxPayload: 1024 * 1024 })
wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    if ((JSON.parse(data.toString()) as { type?: string }).type === 'subscribe') {
      subscribers.add(ws)
      ws.send(JSON.stringify({ type: 'subscribed', id: 's' }))
    }
  })
  ws.on('close', () => subscribers.delete(ws))
})
server.listen(0, '127.0.0.1', () => {
  const address = server.address()
  process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`)
})
process.on('SIGTERM', () => process.exit(0))
