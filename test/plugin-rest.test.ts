// The REST contract of plugin routes: params, query and body are checked against the
// route's schemas before the handler runs (400 otherwise); a handler's reply may set status
// and headers but never cookies or CORS grants; a handler never sees the visitor's cookie.
import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { startFarm } from './fixtures/test-farm.js'
import { probe, resetProbe } from './fixtures/plugin-probe.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-rest/', import.meta.url))
const HOST = 'a.example'

async function restFarm(t: Test) {
  resetProbe()
  return startFarm(t, { farm: true }, undefined, { builtinPluginsDir: PLUGINS })
}

t.test('params, query and body are validated before the handler', async (t) => {
  const farm = await restFarm(t)
  const post = (payload: string, type = 'application/json', headers: Record<string, string> = {}) => farm.app.inject({
    method: 'POST', url: '/plugin/rest/sum', headers: { host: HOST, 'content-type': type, ...headers }, payload,
  })
  t.same((await post('{"a": 2, "b": 3}')).json(), { sum: 5 })
  for (const [label, payload, type] of [
    ['a missing field', '{"a": 2}', 'application/json'], ['a wrong type', '{"a": 2, "b": "3"}', 'application/json'],
    ['an array', '[1, 2]', 'application/json'], ['a form', 'a=2&b=3', 'application/x-www-form-urlencoded'],
  ] as const) {
    const response = await post(payload, type)
    t.equal(response.statusCode, 400, label)
    t.equal(response.json().code, 'WIKIFARM_ERR_VALIDATION')
  }
  for (const [label, payload] of [
    ['malformed JSON', '{"a": '],
    ['prototype poisoning', '{"a": 1, "b": 2, "__proto__": {"x": 1}}'],
  ] as const) {
    const response = await post(payload)
    t.equal(response.statusCode, 400, label)
    t.equal(response.json().code, 'WIKIFARM_ERR_BAD_JSON')
  }
  const foreign = await post('{"a": 2, "b": 3}', 'application/json', { origin: 'https://evil.example' })
  t.equal(foreign.statusCode, 403, 'a state-changing request from a foreign origin is refused')

  t.same((await farm.app.inject({ url: '/plugin/rest/items/42?q=x', headers: { host: HOST } })).json(), {
    id: '42',
    q: 'x',
  })
  for (const url of ['/plugin/rest/items/4x2?q=x', '/plugin/rest/items/42', '/plugin/rest/items/42?q=']) {
    const response = await farm.app.inject({ url, headers: { host: HOST } })
    t.equal(response.statusCode, 400, url)
    t.equal(response.json().code, 'WIKIFARM_ERR_VALIDATION')
  }
  t.same(probe.log, ['called:sum', 'called:items'], 'the handler ran only for valid requests')
})

t.test('what a handler sees of the request', async (t) => {
  const farm = await restFarm(t)
  const response = await farm.app.inject({
    url: '/plugin/rest/request?page=welcome-visitors&x=1',
    headers: { host: HOST, cookie: 'wikifarm_session=abc', authorization: 'Basic c2VjcmV0', 'x-custom': 'kept' },
  })
  const seen = response.json() as {
    headers: Record<string, string>
    query: Record<string, string>
    path: string
    method: string
  }
  t.equal(seen.headers.cookie, undefined, 'no cookie')
  t.equal(seen.headers.authorization, undefined, 'no credentials')
  t.equal(seen.headers['x-custom'], 'kept')
  t.same(seen.query, { x: '1' }, 'identity parameters belong to the kernel')
  t.equal(seen.path, '/request')
  t.equal(seen.method, 'GET')
  const del = await farm.app.inject({ method: 'DELETE', url: '/plugin/rest/things/7', headers: { host: HOST } })
  t.same(del.json(), { deleted: '7' }, 'other methods are dispatched too')
})

t.test('a full reply sets status and headers, but never cookies or CORS grants', async (t) => {
  const farm = await restFarm(t)
  const custom = await farm.app.inject({
    url: '/plugin/rest/custom',
    headers: { host: HOST, cookie: 'wikifarm_session=x' },
  })
  t.equal(custom.statusCode, 201)
  t.equal(custom.headers['x-plugin'], 'yes')
  t.equal(custom.body, 'made by the plugin')
  t.notMatch(String(custom.headers['set-cookie'] ?? ''), /forged/, 'no cookie set by the plugin')
  t.not(custom.headers['access-control-allow-origin'], 'https://evil.example', 'no CORS grant by the plugin')
  const bytes = await farm.app.inject({ url: '/plugin/rest/bytes', headers: { host: HOST } })
  t.same([...bytes.rawPayload], [0, 1, 2, 255], 'bytes are sent as they are')
  t.equal(bytes.headers['content-type'], 'application/octet-stream')
})
