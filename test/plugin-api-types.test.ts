// The plugin API's types make a wrong declaration a compile error. `tsc --noEmit` (CI) checks
// this file: every `@ts-expect-error` below must meet an error on the next line, or tsc fails
// with "Unused '@ts-expect-error' directive". The declarations that must not compile live in
// functions that never run; the tap assertions at the end check what definePlugin, route,
// socket, reply and the error classes do at run time.
import t from 'tap'
import { Type, type Static } from 'typebox'
import {
  API_VERSION,
  SUBPROTOCOL_V1,
  PluginHttpError,
  PluginUnavailable,
  definePlugin,
  reply,
  route,
  socket,
  type Connection,
  type Envelope,
  type FarmEvents,
  type Identity,
  type KernelHandle,
  type PluginInstance,
  type PluginLogger,
  type PluginRequest,
  type RequestContext,
  type SessionInfo,
  type SiteHandle,
} from '../core/plugin-api.js'
import type * as Sdk from '../core/plugin-api.js'
import {
  SUPPORTED_API_VERSIONS, isDefinedPlugin, isPluginHttpError, isPluginReply, isPluginUnavailable,
} from '../core/plugin-host/contract.js'
import type { Page } from '../schemas/page.js'

// ─── type-level helpers ─────────────────────────────────────────────────────────────────────

/** True when A and B are the same type (not merely assignable). */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
/** Compiles only when its argument is `true`. */
function assertType<T extends true>(): T | void {}

// ─── a correct plugin, using every part of the API, compiles without a cast ─────────────────

const Sum = {
  body: Type.Object({ a: Type.Number(), b: Type.Number() }),
  response: Type.Object({ sum: Type.Number() }),
}
const Ping = Type.Object({
  type: Type.Literal('ping'),
  id: Type.Optional(Type.String()),
  data: Type.Object({ n: Type.Number() }),
})

const sumRoute = route({
  method: 'POST', url: '/sum', schema: Sum,
  handler: async (request) => {
    assertType<Equals<typeof request.body, { a: number; b: number }>>()
    return { sum: request.body.a + request.body.b }
  },
})

const pageRoute = route({
  method: 'GET', url: '/pages/:slug',
  schema: { params: Type.Object({ slug: Type.String({ pattern: '^[a-z0-9-]{1,100}$' }) }) },
  handler: async (request, ctx) => {
    assertType<Equals<typeof request.params, { slug: string }>>()
    const page = await ctx.site.getPage(request.params.slug)
    if (!page) throw new PluginHttpError(404, 'TYPES_NO_PAGE', 'no such page')
    // Any reply: a status, headers, a text body.
    return reply({ status: 200, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: page.title })
  },
})

const pingSocket = socket({
  url: '/', codec: 'json', message: Ping,
  onConnect: (conn) => {
    assertType<Equals<typeof conn, Connection<Envelope>>>()
    conn.send({ type: 'hello', data: { site: conn.site.name, protocol: conn.protocol } })
  },
  onMessage: (conn, message) => {
    assertType<Equals<typeof message, Static<typeof Ping>>>()
    conn.send({ type: 'pong', id: message.id, data: message.data.n + 1 })
  },
  onClose: (conn, code, reason) => { conn.log.info('closed', { code, reason }) },
})

const shoutSocket = socket({
  url: '/shout', codec: 'text',
  onMessage: (conn, text) => {
    assertType<Equals<typeof text, string>>()
    conn.send(text.toUpperCase())
  },
})

const heard: string[] = []

// No apiVersion: definePlugin stamps the SDK's.
const good = definePlugin({
  name: 'types-good',
  trust: 'site',
  options: Type.Object({ greeting: Type.String({ default: 'hello' }), limit: Type.Optional(Type.Number()) }),
  async launch(kernel, options) {
    assertType<Equals<typeof options, { greeting: string; limit?: number }>>()
    assertType<Equals<typeof kernel, KernelHandle>>()
    const sites: string[] = await kernel.sites()
    void sites
    return {
      routes: [
        sumRoute,
        pageRoute,
        route({ method: 'GET', url: '/greeting', handler: async () => ({ greeting: options.greeting }) }),
      ],
      sockets: [pingSocket, shoutSocket],
      events: {
        'page.changed': (event) => {
          assertType<Equals<typeof event, FarmEvents['page.changed']>>()
          heard.push(`${event.site}/${event.slug}`)
        },
        'connection.closed': async (event) => { heard.push(`closed ${event.code}`) },
      },
      async close() { heard.length = 0 },
    }
  },
})

// What handlers receive is read-only data.
function readOnlyContext(ctx: RequestContext, request: PluginRequest<typeof Sum>): void {
  assertType<Equals<typeof ctx.session, SessionInfo>>()
  assertType<Equals<typeof ctx.identity, Identity>>()
  assertType<Equals<typeof ctx.site, SiteHandle>>()
  assertType<Equals<ReturnType<SiteHandle['getPage']>, Promise<Page | null>>>()
  assertType<Equals<ReturnType<SiteHandle['publish']>, Promise<number>>>()
  // @ts-expect-error: what is published is JSON, not a function
  void ctx.site.publish('page', () => 1)
  assertType<Equals<Connection['protocol'], 'wikifarm.v1' | null>>()
  // @ts-expect-error: the session is the kernel's, not the plugin's
  ctx.session.isOwner = true
  // @ts-expect-error: identity is what the client claimed; a plugin cannot rewrite it
  ctx.identity.page = 'other-page'
  // @ts-expect-error: the lineup is a readonly array
  ctx.identity.lineup.push('another')
  // @ts-expect-error: so is the site's name
  ctx.site.name = 'evil.example'
  // @ts-expect-error: the request too
  request.method = 'DELETE'
}
void readOnlyContext

// ─── wrong declarations: each one is a compile error ────────────────────────────────────────

function wrongRoutes(): void {
  route({
    method: 'POST', url: '/sum', schema: Sum,
    // @ts-expect-error: the handler returns { sum: string } where the response schema says number
    handler: async (request) => ({ sum: String(request.body.a + request.body.b) }),
  })
  route({
    method: 'POST', url: '/sum', schema: Sum,
    // @ts-expect-error: a field the response schema does not have, and not the one it requires
    handler: async () => ({ total: 3 }),
  })
  route({
    method: 'POST', url: '/sum', schema: Sum,
    // @ts-expect-error: `c` is not in the body schema
    handler: async (request) => ({ sum: request.body.c }),
  })
  route({
    method: 'GET', url: '/pages/:slug', schema: { params: Type.Object({ slug: Type.String() }) },
    // @ts-expect-error: `id` is not in the params schema
    handler: async (request) => request.params.id,
  })
  route({
    method: 'GET', url: '/search', schema: { querystring: Type.Object({ q: Type.String() }) },
    // @ts-expect-error: `q` is a string, not a number
    handler: async (request) => { const n: number = request.query.q; return n },
  })
  route({
    method: 'GET', url: '/now',
    // @ts-expect-error: without a response schema the result must still be JSON (or a reply()): a Date is not
    handler: async () => new Date(),
  })
  route({
    method: 'GET', url: '/nothing',
    // @ts-expect-error: a handler must return something (null is fine; undefined is not JSON)
    handler: async () => { /* forgot to return */ },
  })
  route({
    method: 'GET', url: '/sync',
    // @ts-expect-error: handlers are async (they may one day cross a thread or process boundary)
    handler: () => 1,
  })
  // @ts-expect-error: HEAD is not a method a plugin declares
  route({ method: 'HEAD', url: '/x', handler: async () => null })
  // @ts-expect-error: a route needs its url
  route({ method: 'GET', handler: async () => null })
  // @ts-expect-error: a reply's status is a number
  reply({ status: '404', body: 'no' })
  // @ts-expect-error: a reply's body is JSON, text or bytes
  reply({ body: new Map() })
  // @ts-expect-error: PluginHttpError takes a status, a code and a message
  void new PluginHttpError('not found')
  // @ts-expect-error: the retry option is retryAfterMs
  void new PluginUnavailable('no device', { retryAfter: 1000 })
}

function wrongSockets(): void {
  socket({
    url: '/', codec: 'json', message: Ping,
    // @ts-expect-error: `m` is not in the message schema's data
    onMessage: (_conn, message) => { void message.data.m },
  })
  socket({
    url: '/', codec: 'json', message: Ping,
    // @ts-expect-error: `type` is the literal 'ping', so comparing it to 'pong' can never be true
    onMessage: (_conn, message) => { if (message.type === 'pong') return },
  })
  socket({
    url: '/', codec: 'json', message: Ping,
    // @ts-expect-error: a json connection sends envelopes, not bare strings
    onConnect: (conn) => { conn.send('hello') },
  })
  socket({
    url: '/', codec: 'json', message: Ping,
    // @ts-expect-error: an envelope has a type
    onConnect: (conn) => { conn.send({ data: 1 }) },
  })
  socket({
    url: '/', codec: 'json', message: Ping,
    // @ts-expect-error: envelope data is JSON: a function is not
    onConnect: (conn) => { conn.send({ type: 'x', data: { f: () => 1 } }) },
  })
  socket({
    url: '/t', codec: 'text',
    // @ts-expect-error: a text connection sends strings: send(42) is an error
    onMessage: (conn) => { conn.send(42) },
  })
  socket({
    url: '/t', codec: 'text',
    // @ts-expect-error: and not objects either
    onConnect: (conn) => { conn.send({ type: 'hello' }) },
  })
  socket({
    url: '/t', codec: 'text',
    // @ts-expect-error: a text message is a string
    onMessage: (_conn, text) => { const n: number = text; void n },
  })
  // @ts-expect-error: a json socket declares its message schema
  socket({ url: '/', codec: 'json', onMessage: () => {} })
  // @ts-expect-error: there are two codecs, text and json
  socket({ url: '/', codec: 'binary' })
}

function wrongPlugins(): void {
  // @ts-expect-error: trust is 'farm' or 'site'
  definePlugin({ name: 'x', trust: 'world', async launch() { return {} } })
  // @ts-expect-error: a plugin without launch
  definePlugin({ name: 'x', trust: 'site' })
  // @ts-expect-error: a plugin without trust
  definePlugin({ name: 'x', async launch() { return {} } })
  // @ts-expect-error: a misspelt key of the definition
  definePlugin({ name: 'x', trust: 'site', optoins: Type.Object({}), async launch() { return {} } })
  // @ts-expect-error: apiVersion is a number
  definePlugin({ name: 'x', apiVersion: '1', trust: 'site', async launch() { return {} } })
  // @ts-expect-error: the retry interval is the error's: throw new PluginUnavailable(reason, { retryAfterMs })
  definePlugin({ name: 'x', trust: 'site', retryIntervalMs: 2000, async launch() { return {} } })
  // @ts-expect-error: launch is async
  definePlugin({ name: 'x', trust: 'site', launch() { return {} } })
  definePlugin({
    name: 'x', trust: 'site',
    // @ts-expect-error: 'page.changd' is not an event of the farm
    async launch() { return { events: { 'page.changd': () => {} } } },
  })
  definePlugin({
    name: 'x', trust: 'site',
    async launch(): Promise<PluginInstance> {
      // @ts-expect-error: with launch's result type written out, a misspelt event next to a real one is caught too
      return { events: { 'page.changed': () => {}, 'page.deleteed': () => {} } }
    },
  })
  definePlugin({
    name: 'x', trust: 'site',
    // @ts-expect-error: the page.changed payload has no `title` (it is event.page.title)
    async launch() { return { events: { 'page.changed': (event) => { void event.title } } } },
  })
  definePlugin({
    name: 'x', trust: 'site',
    // @ts-expect-error: an instance has routes, sockets, events and close, nothing else
    async launch() { return { rotes: [] } },
  })
  definePlugin({
    name: 'x', trust: 'site',
    // @ts-expect-error: close is async too
    async launch() { return { close: () => {} } },
  })
  definePlugin({
    name: 'x', trust: 'site', options: Type.Object({ device: Type.String() }),
    // @ts-expect-error: options are typed by their schema: device is a string
    async launch(_kernel, options) { const n: number = options.device; void n; return {} },
  })
  definePlugin({
    name: 'x', trust: 'site', options: Type.Object({ device: Type.String() }),
    // @ts-expect-error: and have only the fields the schema declares
    async launch(_kernel, options) { void options.baud; return {} },
  })
  definePlugin({
    name: 'x', trust: 'site',
    // @ts-expect-error: a kernel handle cannot write files or reach Fastify: it has sites() and site()
    async launch(kernel) { void kernel.app; return {} },
  })
}

// Not enforced by the types (yet): these compile, and are wrong. Each is described in
// docs/plugin-guide.md; when the types catch one, move it up with a @ts-expect-error.
function notEnforced(): PluginInstance {
  return {
    // A route declared inline, without route(): its schemas do not type its handler, and
    // its result is not checked against the response schema.
    routes: [
      {
        method: 'GET',
        url: '/inline',
        schema: { response: Type.Object({ a: Type.Number() }) },
        handler: async () => ({ a: 'no' }),
      },
    ],
    sockets: [
      // A json message schema that does not describe an envelope (no `type`): the kernel
      // refuses every frame before the schema runs.
      socket({ url: '/no-type', codec: 'json', message: Type.Object({ foo: Type.String() }) }),
      // A close code the websocket protocol forbids (1005): ws throws at run time.
      socket({
        url: '/bad-close',
        codec: 'text',
        onConnect: (conn) => {
          conn.close(1005)
        },
      }),
    ],
  }
}
void notEnforced
// Without a written result type on launch, a misspelt event (or instance key) next to a real
// one is not caught: TypeScript checks excess properties of the returned literal only when
// launch's result type is written out (see above), or when every key is wrong.
definePlugin({
  name: 'x', trust: 'site',
  async launch() { return { routes: [], rotes: [], events: { 'page.changed': () => {}, 'page.deleteed': () => {} } } },
})
// A params schema that is not all strings: params come from the path as strings and are
// validated without conversion, so this route answers 400 to every request.
route({
  method: 'GET',
  url: '/n/:id',
  schema: { params: Type.Object({ id: Type.Number() }) },
  handler: async (req) => req.params.id * 2,
})
// A plugin written for another API major compiles; the registry refuses it at boot.
definePlugin({ name: 'x', apiVersion: 2, trust: 'site', async launch() { return {} } })

// The SDK carries no kernel-only names: what recognises its products is the kernel's.
function kernelOnly(sdk: typeof Sdk): void {
  // @ts-expect-error: the guards are the kernel's (core/plugin-host/contract.ts)
  void sdk.isDefinedPlugin
  // @ts-expect-error: the guards are the kernel's
  void sdk.isPluginUnavailable
  // @ts-expect-error: the guards are the kernel's
  void sdk.isPluginReply
  // @ts-expect-error: which majors a kernel launches is the kernel's
  void sdk.SUPPORTED_API_VERSIONS
}
// @ts-expect-error: the erased route type is the kernel's
type _NoAnyRoute = Sdk.AnyRouteDeclaration
// @ts-expect-error: the branded definition type is the kernel's
type _NoDefinedPlugin = Sdk.DefinedPlugin

void wrongRoutes
void wrongSockets
void wrongPlugins
void kernelOnly

// ─── at run time ────────────────────────────────────────────────────────────────────────────

const silent: PluginLogger = { debug() {}, info() {}, warn() {}, error() {} }

t.test('definePlugin returns a frozen, recognisable definition', async (t) => {
  t.ok(isDefinedPlugin(good))
  t.ok(Object.isFrozen(good), 'frozen')
  t.throws(() => { (good as { name: string }).name = 'renamed' }, TypeError, 'cannot be renamed after the fact')
  t.equal(good.name, 'types-good')
  t.equal(good.apiVersion, API_VERSION, 'definePlugin stamps the API version when the author leaves it out')
  t.equal(API_VERSION, 1)
  t.equal(definePlugin({ name: 'x', apiVersion: 2, trust: 'site', async launch() { return {} } }).apiVersion, 2,
    'a version the author gives is kept (and the registry refuses a major it does not support)')
  t.equal(good.trust, 'site')
  const { launch, name, apiVersion, trust } = good
  t.notOk(isDefinedPlugin({ launch, name, apiVersion, trust }), 'a look-alike object is not a definePlugin() result')
  for (const value of [null, undefined, 'types-good', 42, () => good]) t.notOk(isDefinedPlugin(value), String(value))
  t.ok(SUPPORTED_API_VERSIONS.includes(API_VERSION), 'this kernel launches its own API version')
  t.equal(SUBPROTOCOL_V1, 'wikifarm.v1')
})

t.test('the SDK exports what an author needs and nothing of the kernel', async (t) => {
  const sdk = await import('../core/plugin-api.js')
  t.same(Object.keys(sdk).sort(), [
    'API_VERSION', 'PluginHttpError', 'PluginUnavailable', 'SUBPROTOCOL_V1', 'definePlugin', 'reply', 'route', 'socket',
  ])
})

t.test("the kernel's guards recognise another copy of the SDK, by registered symbols", async (t) => {
  // A plugin package resolves its own `wikifarm/plugin`: another module instance, as this is.
  const copy = await import(new URL('../core/plugin-api.js?another-copy', import.meta.url).href) as typeof Sdk
  t.not(copy.PluginUnavailable, PluginUnavailable, 'a separate module instance')
  t.ok(isDefinedPlugin(copy.definePlugin({ name: 'x', trust: 'site', async launch() { return {} } })))
  t.ok(isPluginUnavailable(new copy.PluginUnavailable('later')))
  t.ok(isPluginHttpError(new copy.PluginHttpError(409, 'X', 'x')))
  t.ok(isPluginReply(copy.reply({ body: 'x' })))
  t.notOk(isPluginUnavailable(new copy.PluginHttpError(409, 'X', 'x')), 'one brand is not another')
  t.notOk(
    isPluginHttpError(Object.assign(new Error('x'), { statusCode: 409, code: 'X' })),
    'a look-alike error is not one',
  )
  t.notOk(
    isPluginUnavailable({ reason: 'x', [Symbol('wikifarm.unavailable')]: true }),
    'an unregistered symbol is not the brand',
  )
})

t.test('route() and socket() return the declaration itself', async (t) => {
  const declaration = { method: 'GET' as const, url: '/x', handler: async () => null }
  t.equal(route(declaration), declaration)
  const text = { url: '/t', codec: 'text' as const }
  t.equal(socket(text), text)
  t.equal(socket({ ...text }).codec, 'text')
})

t.test('reply() builds a frozen reply that the kernel recognises', async (t) => {
  const headers = { 'x-one': '1' }
  const r = reply({ headers, body: 'text' })
  t.ok(isPluginReply(r))
  t.ok(Object.isFrozen(r))
  t.equal(r.status, 200, 'status defaults to 200')
  headers['x-one'] = 'changed'
  t.same(r.headers, { 'x-one': '1' }, 'headers are copied')
  t.same(reply({ status: 201, body: { ok: true } }).body, { ok: true })
  t.notOk(isPluginReply({ status: 200, headers: {}, body: 'x' }), 'a look-alike is sent as JSON, not as a reply')
  t.notOk(isPluginReply(null))
})

t.test('the error classes carry what the kernel answers with', async (t) => {
  const unavailable = new PluginUnavailable('no device attached', { retryAfterMs: 2000 })
  t.ok(unavailable instanceof Error)
  t.equal(unavailable.name, 'PluginUnavailable')
  t.equal(unavailable.reason, 'no device attached')
  t.equal(unavailable.message, 'no device attached')
  t.equal(unavailable.retryAfterMs, 2000)
  t.equal(new PluginUnavailable('later').retryAfterMs, undefined)
  const http = new PluginHttpError(409, 'TYPES_CONFLICT', 'already there')
  t.ok(http instanceof Error)
  t.match(http, { name: 'PluginHttpError', statusCode: 409, code: 'TYPES_CONFLICT', message: 'already there' })
})

t.test('a plugin is plain async functions: launch and call it without a kernel', async (t) => {
  const kernel: KernelHandle = {
    apiVersion: API_VERSION, trust: 'site', log: silent,
    sites: async () => ['a.example'],
    site: async () => { throw new Error('not in this test') },
  }
  const instance = await good.launch(kernel, { greeting: 'hi' })
  t.same(instance.routes?.map((r) => `${r.method} ${r.url}`), ['POST /sum', 'GET /pages/:slug', 'GET /greeting'])
  t.same(instance.sockets?.map((s) => `${s.codec} ${s.url}`), ['json /', 'text /shout'])
  t.same(Object.keys(instance.events ?? {}), ['page.changed', 'connection.closed'])

  const site: SiteHandle = {
    name: 'a.example',
    getPage: async (slug) => (slug === 'hello' ? { title: 'Hello', story: [] } : null),
    listSlugs: async () => ['hello'],
    sitemap: async () => [],
    applyAction: async () => { throw new Error('read-only here') },
    publish: async () => 0,
  }
  const ctx: RequestContext = {
    site,
    session: { id: 'label', isOwner: false, isAdmin: false },
    identity: { page: null, item: null, lineup: [] },
    log: silent,
  }
  const request = { method: 'POST' as const, path: '/sum', params: {}, query: {}, body: { a: 2, b: 3 }, headers: {} }
  t.same(await sumRoute.handler(request, ctx), { sum: 5 })
  const page = await pageRoute.handler(
    { ...request, method: 'GET', path: '/pages/hello', params: { slug: 'hello' }, body: undefined },
    ctx,
  )
  t.ok(isPluginReply(page))
  t.match(page, { status: 200, body: 'Hello' })
  await t.rejects(
    pageRoute.handler(
      { ...request, method: 'GET', path: '/pages/nope', params: { slug: 'nope' }, body: undefined },
      ctx,
    ),
    { statusCode: 404, code: 'TYPES_NO_PAGE' },
  )

  await instance.events?.['page.changed']?.(
    {
      site: 'a.example',
      slug: 'hello',
      action: { type: 'create', item: { title: 'Hello' } } as never,
      page: { title: 'Hello', story: [] },
    },
    { site },
  )
  t.same(heard, ['a.example/hello'])
  await instance.close?.()
  t.same(heard, [], 'close ran')
})
