// The plugin guide's example plugin and its test, as docs/plugin-guide.md prints them: if the
// API changes under the guide, this fails.
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { createKernel } from '../core/kernel.js'
import { DEFAULTS } from '../core/farm-config.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/guide-plugins/', import.meta.url))

/** A websocket client on 127.0.0.1 that queues what it receives. */
async function connect(port: number, path: string, host: string, protocols: string[] = []) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, protocols, { headers: { host } })
  const inbox: unknown[] = []
  const waiting: ((message: unknown) => void)[] = []
  ws.on('message', (data) => {
    const message: unknown = JSON.parse(String(data))
    const waiter = waiting.shift()
    if (waiter) waiter(message)
    else inbox.push(message)
  })
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const next = (): Promise<unknown> =>
    inbox.length > 0 ? Promise.resolve(inbox.shift()) : new Promise((resolve) => waiting.push(resolve))
  return { ws, next, closed }
}

t.test('recent: REST, a json websocket and page events, per site', async (t) => {
  const kernel = await createKernel({
    ...DEFAULTS,
    farm: true,
    data: t.testdir(),
    cookieSecret: 'a-test-secret',
    cookieSecretIsRandom: false,
    plugins: { recent: { options: { keep: 5 } } },
  }, { logger: false, builtinPluginsDir: PLUGINS })
  t.teardown(() => kernel.close())
  t.equal(kernel.plugins.get('recent')?.state, 'running', 'launched at createKernel, before any request')

  // REST without a socket: app.inject, with the Host of the site to ask.
  const empty = await kernel.app.inject({ url: '/plugin/recent/changes', headers: { host: 'a.example' } })
  t.equal(empty.statusCode, 200)
  t.same(empty.json(), { site: 'a.example', changes: [] })
  const missing = await kernel.app.inject({ url: '/plugin/recent/title/nope', headers: { host: 'a.example' } })
  t.equal(missing.statusCode, 404)
  t.same(missing.json(), { error: 'no page nope here', code: 'RECENT_NO_PAGE' })
  const badQuery = await kernel.app.inject({ url: '/plugin/recent/changes?limit=lots', headers: { host: 'a.example' } })
  t.equal(badQuery.statusCode, 400)
  t.equal(badQuery.json().code, 'WIKIFARM_ERR_VALIDATION')
  const notOwner = await kernel.app.inject({
    method: 'DELETE',
    url: '/plugin/recent/changes',
    headers: { host: 'a.example' },
  })
  t.equal(notOwner.statusCode, 403)
  t.equal(notOwner.json().code, 'RECENT_NOT_OWNER')

  // Websockets need a listening server: a real client on 127.0.0.1.
  await kernel.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = kernel.app.server.address() as AddressInfo
  const a = await connect(port, '/plugin/recent/live?page=welcome-visitors', 'a.example', ['wikifarm.v1'])
  const b = await connect(port, '/plugin/recent/live', 'b.example')
  t.equal(a.ws.protocol, 'wikifarm.v1', 'the subprotocol is negotiated')
  t.same(await a.next(), {
    type: 'hello',
    data: { site: 'a.example', protocol: 'wikifarm.v1', page: 'welcome-visitors' },
  })
  t.same(await b.next(), { type: 'hello', data: { site: 'b.example', protocol: null, page: null } }, 'a plain client')

  // A page changes on a.example: its watchers hear it, b.example's do not.
  await kernel.sites
    .open('a.example')
    .applyAction('hello-world', { type: 'create', item: { title: 'Hello World', story: [] } })
  t.match(await a.next(), { type: 'changed', data: { slug: 'hello-world', title: 'Hello World', action: 'create' } })
  a.ws.send(JSON.stringify({ type: 'since', id: 'q1', data: { count: 10 } }))
  t.match(await a.next(), { type: 'changes', id: 'q1', data: [{ slug: 'hello-world' }] })
  b.ws.send(JSON.stringify({ type: 'ping', id: 'p1' }))
  t.same(await b.next(), { type: 'pong', id: 'p1' }, 'b heard no change before its pong')

  // A frame that fails the message schema gets an error envelope, not the handler.
  b.ws.send(JSON.stringify({ type: 'since', data: { count: 0 } }))
  t.match(await b.next(), { type: 'error', data: { code: 'WIKIFARM_ERR_BAD_MESSAGE' } })

  const after = await kernel.app.inject({ url: '/plugin/recent/changes', headers: { host: 'a.example' } })
  t.match(after.json(), { site: 'a.example', changes: [{ slug: 'hello-world', title: 'Hello World' }] })
  const other = await kernel.app.inject({ url: '/plugin/recent/changes', headers: { host: 'b.example' } })
  t.same(other.json(), { site: 'b.example', changes: [] })

  // Shutdown closes every socket with 1001, then closes the plugin.
  await kernel.close()
  t.equal(await a.closed, 1001)
  t.equal(await b.closed, 1001)
})

// ─── docs/plugin-guide.md prints this file down to here ────────────────────────────────────

import { readFileSync } from 'node:fs'

// The sources, not their compiled copies in dist/test/: the guide prints TypeScript.
const read = (relative: string): string =>
  readFileSync(new URL(relative, new URL('../../test/', import.meta.url)), 'utf8')

t.test('docs/plugin-guide.md prints this plugin and this test as they are', async (t) => {
  const guide = read('../docs/plugin-guide.md')
  const plugin = read('./fixtures/guide-plugins/recent/index.ts').split('\n').slice(2).join('\n').trimEnd()
  t.ok(plugin.includes("from 'wikifarm/plugin'"), 'the example imports the SDK by its package name')
  t.ok(guide.includes(plugin), 'the example plugin')
  const test = read('./guide-example.test.ts').split('// ─── docs/plugin-guide.md prints')[0]?.trimEnd() ?? ''
  t.ok(test.length > 1000 && guide.includes(test), 'the test')
})

t.test("the guide's package.json of a plugin in its own package is the fixture package's", async (t) => {
  const section = read('../docs/plugin-guide.md').split('## A plugin in its own package')[1] ?? ''
  const printed = /```json\n([\s\S]*?)```/.exec(section)?.[1] ?? '{}'
  t.same(JSON.parse(printed), JSON.parse(read('./fixtures/plugin-package/package.json')))
  t.match(
    read('./fixtures/plugin-package/src/index.ts'),
    /from 'wikifarm\/plugin'/,
    'it imports the SDK by its package name',
  )
})
