import t from 'tap'
import Fastify from 'fastify'
t.test('fastify runs', async (t) => {
  const app = Fastify()
  app.get('/', async () => ({ ok: true }))
  const r = await app.inject('/')
  t.equal(r.statusCode, 200)
})
