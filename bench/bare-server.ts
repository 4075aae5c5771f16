// The practical limit for page reads: a bare Fastify route answering the same bytes from
// memory after a Map lookup of the Host. Prints its port on stdout.
import Fastify from 'fastify'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const page = JSON.stringify(
  JSON.parse(
    readFileSync(fileURLToPath(new URL('../core/pages/default-pages/welcome-visitors', import.meta.url)), 'utf8'),
  ),
)
const sites = Number(process.env.BENCH_SITES ?? 1000)
const pages = new Map<string, string>()
for (let i = 0; i < sites; i++) pages.set(`site${i}.example`, page)

const app = Fastify({ logger: false })
app.get('/welcome-visitors.json', async (request, reply) => {
  const body = pages.get((request.headers.host ?? '').split(':')[0] ?? '')
  if (body === undefined) return reply.code(404).send({ error: 'unknown host' })
  return reply.type('application/json; charset=utf-8').send(body)
})
const address = await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(`${new URL(address).port}\n`)
