// Bad input gets a clear error and loses nothing: every request here answers 4xx with a
// WIKIFARM_ERR_* code in a JSON body, and the data folder is byte for byte as it was.
import t, { type Test } from 'tap'
import type { InjectOptions, LightMyRequestResponse } from 'fastify'
import {
  claim,
  FORM,
  http,
  itemId,
  listenLocal,
  putAction,
  snapshot,
  startFarm,
  type TestFarm,
} from './fixtures/test-farm.js'

const HOST = 'a.example'
const para = (n: number, text: string) => ({ type: 'paragraph', id: itemId(n), text })

interface Case {
  why: string
  request: InjectOptions
  status: number
  code: string
}

async function prepared(t: Test, overrides = {}): Promise<TestFarm & { cookie: string }> {
  const farm = await startFarm(t, { farm: true, ...overrides })
  const owner = await claim(t, farm.app, HOST)
  const ok = async (slug: string, action: unknown) =>
    t.equal((await putAction(farm.app, HOST, owner.cookie, slug, action)).statusCode, 200)
  await ok('x', { type: 'create', item: { title: 'X', story: [para(1, 'one'), para(2, 'two')] }, date: 1 })
  await ok('x', { type: 'add', id: itemId(3), item: para(3, 'three'), after: itemId(2), date: 2 })
  await ok('gone', { type: 'create', item: { title: 'Gone' }, date: 3 })
  t.equal(
    (await farm.app.inject({ method: 'DELETE', url: '/gone.json', headers: { host: HOST, cookie: owner.cookie } }))
      .statusCode,
    200,
  )
  await farm.kernel.sites.open(HOST).flush()
  return { ...farm, cookie: owner.cookie }
}

interface Answer {
  status: number
  type: string | undefined
  body: string
}

type Send = (request: InjectOptions) => Promise<Answer>

function injector(farm: TestFarm): Send {
  return async (request) => {
    const response: LightMyRequestResponse = await farm.app.inject(request)
    return {
      status: response.statusCode,
      type: response.headers['content-type'] as string | undefined,
      body: response.body,
    }
  }
}

/** The same requests over a real socket, where the URL reaches the server exactly as written. */
async function overHttp(farm: TestFarm): Promise<Send> {
  const port = await listenLocal(farm)
  return async (request) => {
    const headers = Object.fromEntries(Object.entries(request.headers ?? {}).map(([k, v]) => [k, String(v)]))
    const { host, ...rest } = headers
    const payload = request.payload
    const response = await http(port, request.method ?? 'GET', String(request.url), host ?? HOST,
      { headers: rest, body: typeof payload === 'string' ? payload : undefined })
    return { status: response.status, type: response.headers['content-type'], body: response.body }
  }
}

function checkError(t: Test, response: Answer, c: Case): void {
  t.equal(response.status, c.status, `${c.why}: status`)
  t.match(response.type, /^application\/json/, `${c.why}: JSON`)
  let body: { error?: unknown; code?: unknown } = {}
  try {
    body = JSON.parse(response.body) as typeof body
  } catch {
    t.fail(`${c.why}: body is not JSON: ${response.body.slice(0, 200)}`)
  }
  t.equal(body.code, c.code, `${c.why}: code`)
  t.equal(typeof body.error, 'string', `${c.why}: a message`)
}

async function runCases(t: Test, farm: TestFarm, cases: Case[], send: Send = injector(farm)): Promise<void> {
  const before = await snapshot(farm.data)
  const page = (await farm.app.inject({ url: '/x.json', headers: { host: HOST } })).body
  for (const c of cases) checkError(t, await send(c.request), c)
  await farm.kernel.sites.open(HOST).flush()
  t.same(await snapshot(farm.data), before, 'every file is as it was')
  t.equal((await farm.app.inject({ url: '/x.json', headers: { host: HOST } })).body, page, 'and so is the page served')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is clean')
}

const BAD_SLUGS: Array<[string, string, number, string]> = [
  // [why, as it appears in the URL, status, code]
  ['uppercase', 'X', 400, 'WIKIFARM_ERR_BAD_SLUG'],
  ['underscore', 'bad_slug', 400, 'WIKIFARM_ERR_BAD_SLUG'],
  ['dot dot, encoded', '%2e%2e', 400, 'WIKIFARM_ERR_BAD_SLUG'],
  ['encoded slash', 'a%2Fb', 400, 'WIKIFARM_ERR_BAD_SLUG'],
  ['encoded traversal', '..%2f..%2fstatus%2fowner', 400, 'WIKIFARM_ERR_BAD_SLUG'],
  ['encoded backslash', 'a%5Cb', 400, 'WIKIFARM_ERR_BAD_SLUG'],
  ['space', 'a%20b', 400, 'WIKIFARM_ERR_BAD_SLUG'],
  ['NUL', 'a%00b', 400, 'WIKIFARM_ERR_BAD_SLUG'],
  ['non-ASCII', '%C3%A9t%C3%A9', 400, 'WIKIFARM_ERR_BAD_SLUG'],
  ['a dot', 'a.b', 400, 'WIKIFARM_ERR_BAD_SLUG'],
  ['101 characters', 'a'.repeat(101), 400, 'WIKIFARM_ERR_BAD_SLUG'],
  ['600 characters', 'a'.repeat(600), 414, 'WIKIFARM_ERR_URL_TOO_LONG'],
  ['broken %-escape', '%E0%A4%A', 400, 'WIKIFARM_ERR_BAD_URL'],
]

t.test('bad slugs, in every route that takes one', async (t) => {
  const farm = await prepared(t)
  const headers = { host: HOST, cookie: farm.cookie }
  const cases: Case[] = []
  for (const [why, slug, status, code] of BAD_SLUGS) {
    for (const request of [
      { method: 'GET', url: `/${slug}.json`, headers },
      { method: 'GET', url: `/${slug}.html`, headers },
      { method: 'DELETE', url: `/${slug}.json`, headers },
      { method: 'GET', url: `/recycler/${slug}.json`, headers },
      { method: 'DELETE', url: `/recycler/${slug}.json`, headers },
      { method: 'PUT', url: `/page/${slug}/action`, headers: { ...headers, 'content-type': FORM },
        payload: `action=${encodeURIComponent(JSON.stringify({ type: 'create', item: { title: 'T' } }))}` },
    ] as const) {
      cases.push({ why: `${why}: ${request.method} ${request.url.slice(0, 60)}`, request, status, code })
    }
  }
  // Over HTTP: inject would resolve %2e%2e as a dot segment before the router saw it.
  await runCases(t, farm, cases, await overHttp(farm))
})

t.test('bad item ids', async (t) => {
  const farm = await prepared(t)
  const cases: Case[] = []
  const actions: Array<[string, unknown]> = [
    ['edit id too short', { type: 'edit', id: 'abc', item: { ...para(1, 'x'), id: 'abc' } }],
    ['edit id uppercase', { type: 'edit', id: 'AAAAAAAAAAAAAAAA', item: { ...para(1, 'x'), id: 'AAAAAAAAAAAAAAAA' } }],
    ['edit id 17 hex', { type: 'edit', id: `${itemId(1)}0`, item: para(1, 'x') }],
    ['item id not hex', { type: 'add', id: itemId(9), item: { ...para(9, 'x'), id: 'zzzzzzzzzzzzzzzz' } }],
    ['item id with a path', { type: 'add', id: itemId(9), item: { ...para(9, 'x'), id: '../../etc/passwd' } }],
    ['after not an id', { type: 'add', id: itemId(9), item: para(9, 'x'), after: 'first' }],
    ['remove id empty', { type: 'remove', id: '' }],
    ['move order with a bad id', { type: 'move', id: itemId(1), order: [itemId(1), itemId(2), 'nope'] }],
    ['move id bad', { type: 'move', id: 'x', order: [itemId(1), itemId(2), itemId(3)] }],
  ]
  for (const [why, action] of actions) {
    cases.push({
      why,
      request: {
        method: 'PUT',
        url: '/page/x/action',
        headers: { host: HOST, cookie: farm.cookie, 'content-type': FORM },
        payload: `action=${encodeURIComponent(JSON.stringify(action))}`,
      },
      status: 400,
      code: 'WIKIFARM_ERR_BAD_ITEM_ID',
    })
  }
  cases.push({
    why: 'an id that is not a string',
    request: {
      method: 'PUT',
      url: '/page/x/action',
      headers: { host: HOST, cookie: farm.cookie, 'content-type': FORM },
      payload: `action=${encodeURIComponent(JSON.stringify({ type: 'remove', id: 12 }))}`,
    },
    status: 400,
    code: 'WIKIFARM_ERR_BAD_ACTION',
  })
  await runCases(t, farm, cases)
})

t.test('bad actions: malformed, poisoned, unknown, impossible', async (t) => {
  const farm = await prepared(t)
  const form = (payload: string, slug = 'x'): InjectOptions => ({
    method: 'PUT',
    url: `/page/${slug}/action`,
    headers: { host: HOST, cookie: farm.cookie, 'content-type': FORM },
    payload,
  })
  const field = (json: string, slug = 'x') => form(`action=${encodeURIComponent(json)}`, slug)
  const json = (payload: string): InjectOptions => ({
    method: 'PUT',
    url: '/page/x/action',
    headers: { host: HOST, cookie: farm.cookie, 'content-type': 'application/json' },
    payload,
  })
  const add = (extra: string) =>
    `{"type":"add","id":"${itemId(9)}","item":{"type":"paragraph","id":"${itemId(9)}","text":"p"${extra}}}`
  const cases: Case[] = [
    // The form field is not JSON, or not an object.
    { why: 'field is not JSON', request: field('{"type":"add",'), status: 400, code: 'WIKIFARM_ERR_BAD_JSON' },
    { why: 'field is prose', request: field('not json at all'), status: 400, code: 'WIKIFARM_ERR_BAD_JSON' },
    { why: 'field is null', request: field('null'), status: 400, code: 'WIKIFARM_ERR_BAD_ACTION' },
    { why: 'field is an array', request: field('[1,2]'), status: 400, code: 'WIKIFARM_ERR_BAD_ACTION' },
    { why: 'field is a string', request: field('"create"'), status: 400, code: 'WIKIFARM_ERR_BAD_ACTION' },
    {
      why: 'field given twice',
      request: form(`action=${encodeURIComponent(add(''))}&action=${encodeURIComponent(add(''))}`),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_ACTION',
    },
    { why: 'missing action field', request: form('foo=bar'), status: 400, code: 'WIKIFARM_ERR_BAD_ACTION' },
    { why: 'empty action field', request: form('action='), status: 400, code: 'WIKIFARM_ERR_BAD_ACTION' },
    { why: 'empty form', request: form(''), status: 400, code: 'WIKIFARM_ERR_BAD_ACTION' },
    {
      why: 'form fields named __proto__',
      request: form('__proto__=x&constructor%5Bprototype%5D%5Bpolluted%5D=1'),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_ACTION',
    },
    // Prototype poisoning in the form field.
    {
      why: '__proto__ in the field',
      request: field(`{"type":"remove","id":"${itemId(1)}","__proto__":{"polluted":true}}`),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_JSON',
    },
    {
      why: '__proto__ deep in the field',
      request: field(add(',"__proto__":{"polluted":true}')),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_JSON',
    },
    {
      why: 'constructor.prototype in the field',
      request: field(add(',"constructor":{"prototype":{"polluted":true}}')),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_JSON',
    },
    {
      why: 'escaped __proto__ in the field',
      request: field(`{"type":"remove","id":"${itemId(1)}","\\u005f_proto__":{"polluted":true}}`),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_JSON',
    },
    // ...and in a JSON body.
    {
      why: '__proto__ in a JSON body',
      request: json(`{"action":${add('')},"__proto__":{"polluted":true}}`),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_JSON',
    },
    {
      why: '__proto__ in the JSON action',
      request: json(`{"action":${add(',"__proto__":{"polluted":true}')}}`),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_JSON',
    },
    {
      why: 'constructor in a JSON body',
      request: json(`{"action":${add(',"constructor":{"prototype":{"polluted":true}}')}}`),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_JSON',
    },
    {
      why: '__proto__ in a JSON string action',
      request: json(JSON.stringify({ action: add(',"__proto__":{"polluted":true}') })),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_JSON',
    },
    {
      why: 'a bare poisoned action',
      request: json(add(',"__proto__":{"polluted":true}')),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_JSON',
    },
    { why: 'malformed JSON body', request: json('{"action":'), status: 400, code: 'WIKIFARM_ERR_BAD_JSON' },
    // Parsed fine, but deep enough to overflow the stack when the page is cloned or written.
    {
      why: 'deeply nested field',
      request: field(add(`,"data":${'['.repeat(20000)}${']'.repeat(20000)}`)),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_ACTION',
    },
    {
      why: 'deeply nested JSON body',
      request: json(`{"action":${add(`,"data":${'{"a":'.repeat(20000)}1${'}'.repeat(20000)}`)}}`),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_ACTION',
    },
    { why: 'empty JSON body', request: json(''), status: 400, code: 'WIKIFARM_ERR_BAD_JSON' },
    { why: 'JSON body that is an array', request: json('[]'), status: 400, code: 'WIKIFARM_ERR_BAD_ACTION' },
    { why: 'JSON body without action', request: json('{}'), status: 400, code: 'WIKIFARM_ERR_BAD_ACTION' },
    // Unknown or malformed action types.
    { why: 'unknown type', request: field('{"type":"bogus"}'), status: 400, code: 'WIKIFARM_ERR_UNKNOWN_ACTION' },
    {
      why: 'type in the wrong case',
      request: field('{"type":"Create","item":{"title":"T"}}'),
      status: 400,
      code: 'WIKIFARM_ERR_UNKNOWN_ACTION',
    },
    { why: 'type __proto__', request: field('{"type":"toString"}'), status: 400, code: 'WIKIFARM_ERR_UNKNOWN_ACTION' },
    { why: 'no type', request: field(`{"id":"${itemId(1)}"}`), status: 400, code: 'WIKIFARM_ERR_BAD_ACTION' },
    { why: 'type not a string', request: field('{"type":5}'), status: 400, code: 'WIKIFARM_ERR_BAD_ACTION' },
    {
      why: 'create without a title',
      request: field('{"type":"create","item":{}}', 'new-page'),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_ACTION',
    },
    {
      why: 'create with a story that is not a list',
      request: field('{"type":"create","item":{"title":"T","story":{}}}', 'new-page'),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_ACTION',
    },
    {
      why: 'add without an item',
      request: field(`{"type":"add","id":"${itemId(9)}"}`),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_ACTION',
    },
    {
      why: 'add with an item without a type',
      request: field(`{"type":"add","id":"${itemId(9)}","item":{"id":"${itemId(9)}"}}`),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_ACTION',
    },
    {
      why: 'move without an order',
      request: field(`{"type":"move","id":"${itemId(1)}"}`),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_ACTION',
    },
    {
      why: 'a date that is a string',
      request: field(`{"type":"remove","id":"${itemId(1)}","date":"yesterday"}`),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_ACTION',
    },
    {
      why: 'a negative date',
      request: field(`{"type":"remove","id":"${itemId(1)}","date":-1}`),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_ACTION',
    },
    {
      why: 'fork from no site',
      request: field('{"type":"fork","site":"not a host"}'),
      status: 400,
      code: 'WIKIFARM_ERR_BAD_ACTION',
    },
    // Valid actions that cannot apply.
    {
      why: 'edit of a missing item',
      request: field(`{"type":"edit","id":"${itemId(8)}","item":{"type":"paragraph","id":"${itemId(8)}","text":"x"}}`),
      status: 409,
      code: 'WIKIFARM_ERR_ITEM_NOT_FOUND',
    },
    {
      why: 'remove of a missing item',
      request: field(`{"type":"remove","id":"${itemId(8)}"}`),
      status: 409,
      code: 'WIKIFARM_ERR_ITEM_NOT_FOUND',
    },
    {
      why: 'create over an existing page',
      request: field('{"type":"create","item":{"title":"Again"}}'),
      status: 409,
      code: 'WIKIFARM_ERR_PAGE_EXISTS',
    },
  ]
  for (const type of ['add', 'edit', 'remove', 'move']) {
    const action = { type, id: itemId(1), item: para(1, 'x'), order: [itemId(1)] }
    cases.push({
      why: `${type} on a missing page`,
      request: field(JSON.stringify(action), 'no-such-page'),
      status: 404,
      code: 'WIKIFARM_ERR_PAGE_NOT_FOUND',
    })
    cases.push({
      why: `${type} on a recycled page`,
      request: field(JSON.stringify(action), 'gone'),
      status: 404,
      code: 'WIKIFARM_ERR_PAGE_NOT_FOUND',
    })
  }
  await runCases(t, farm, cases)
})

t.test('bodies: too large, wrong content type', async (t) => {
  const limit = 16 * 1024
  const farm = await prepared(t, { uploadLimit: limit })
  const headers = { host: HOST, cookie: farm.cookie }
  const big = 'x'.repeat(limit + 1)
  const action = JSON.stringify({ type: 'add', id: itemId(9), item: para(9, big) })
  const cases: Case[] = [
    {
      why: 'oversize form',
      request: {
        method: 'PUT',
        url: '/page/x/action',
        headers: { ...headers, 'content-type': FORM },
        payload: `action=${encodeURIComponent(action)}`,
      },
      status: 413,
      code: 'WIKIFARM_ERR_PAYLOAD_TOO_LARGE',
    },
    {
      why: 'oversize JSON',
      request: {
        method: 'PUT',
        url: '/page/x/action',
        headers: { ...headers, 'content-type': 'application/json' },
        payload: JSON.stringify({ action }),
      },
      status: 413,
      code: 'WIKIFARM_ERR_PAYLOAD_TOO_LARGE',
    },
    {
      why: 'oversize favicon',
      request: {
        method: 'POST',
        url: '/favicon.png',
        headers: { ...headers, 'content-type': 'application/json' },
        payload: JSON.stringify({ image: big }),
      },
      status: 413,
      code: 'WIKIFARM_ERR_PAYLOAD_TOO_LARGE',
    },
    {
      why: 'oversize reclaim',
      request: {
        method: 'POST',
        url: '/auth/reclaim/',
        headers: { ...headers, 'content-type': 'text/plain' },
        payload: big,
      },
      status: 413,
      code: 'WIKIFARM_ERR_PAYLOAD_TOO_LARGE',
    },
    {
      why: 'XML',
      request: {
        method: 'PUT',
        url: '/page/x/action',
        headers: { ...headers, 'content-type': 'application/xml' },
        payload: '<action/>',
      },
      status: 415,
      code: 'WIKIFARM_ERR_UNSUPPORTED_MEDIA',
    },
    {
      why: 'multipart',
      request: {
        method: 'PUT',
        url: '/page/x/action',
        headers: { ...headers, 'content-type': 'multipart/form-data; boundary=x' },
        payload: '--x\r\nContent-Disposition: form-data; name="action"\r\n\r\n{}\r\n--x--',
      },
      status: 415,
      code: 'WIKIFARM_ERR_UNSUPPORTED_MEDIA',
    },
    {
      why: 'text/plain action',
      request: {
        method: 'PUT',
        url: '/page/x/action',
        headers: { ...headers, 'content-type': 'text/plain' },
        payload: `action=${encodeURIComponent(JSON.stringify({ type: 'remove', id: itemId(1) }))}`,
      },
      status: 415,
      code: 'WIKIFARM_ERR_UNSUPPORTED_MEDIA',
    },
    {
      why: 'text/plain favicon',
      request: {
        method: 'POST',
        url: '/favicon.png',
        headers: { ...headers, 'content-type': 'text/plain' },
        payload: 'iVBORw0KGgo=',
      },
      status: 415,
      code: 'WIKIFARM_ERR_UNSUPPORTED_MEDIA',
    },
    {
      why: 'octet-stream favicon',
      request: {
        method: 'POST',
        url: '/favicon.png',
        headers: { ...headers, 'content-type': 'application/octet-stream' },
        payload: 'x',
      },
      status: 415,
      code: 'WIKIFARM_ERR_UNSUPPORTED_MEDIA',
    },
    {
      why: 'favicon that is not a PNG',
      request: {
        method: 'POST',
        url: '/favicon.png',
        headers: { ...headers, 'content-type': 'application/json' },
        payload: JSON.stringify({ image: 'data:image/png;base64,R0lGODlh' }),
      },
      status: 400,
      code: 'WIKIFARM_ERR_VALIDATION',
    },
    {
      why: 'no such route',
      request: { method: 'PATCH', url: '/x.json', headers },
      status: 404,
      code: 'WIKIFARM_ERR_ROUTE_NOT_FOUND',
    },
  ]
  await runCases(t, farm, cases)
})

t.test(
  'a visitor who is not the owner gets 403 before the action is even read; a bad slug 400 before that',
  async (t) => {
    const farm = await prepared(t)
    const response = await putAction(farm.app, HOST, null, 'x', { type: 'bogus' })
    t.equal(response.statusCode, 403)
    t.equal(response.json().code, 'WIKIFARM_ERR_NOT_OWNER')
    // A bad slug is refused before anything else.
    const slug = await putAction(farm.app, HOST, null, 'X', { type: 'bogus' })
    t.equal(slug.statusCode, 400)
    t.equal(slug.json().code, 'WIKIFARM_ERR_BAD_SLUG')
  },
)
