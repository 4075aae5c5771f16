// The dispatch baseline: bench-echo's handlers registered directly on Fastify and
// @fastify/websocket, with the site taken from Host by a Map lookup. Prints its port.
import Fastify from 'fastify'
import fastifyWebsocket from '@fastify/websocket'

const sites = new Set(Array.from({ length: Number(process.env.BENCH_SITES ?? 100) }, (_, i) => `site${i}.example`))
const app = Fastify({ logger: false })
await app.register(fastifyWebsocket)
app.get('/plugin/bench-echo/echo', async (request, reply) => {
  const site = (request.headers.host ?? '').split(':')[0] ?? ''
  if (!sites.has(site)) return reply.code(404).send({ error: 'unknown host' })
  return reply.type('application/json; charset=utf-8').send(JSON.stringify({ ok: true, site }))
})
app.get('/plugin/bench-echo', { websocket: true }, (socket) => {
  socket.on('message', (data) => socket.send(data.toString()))
})
const address = await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(`${new URL(address).port}\n`)
