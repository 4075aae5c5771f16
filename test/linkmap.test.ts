// Linkmap over real sockets on 127.0.0.1: per-site maps, live updates from PUT and DELETE to
// every client of that site and no other, the plain (legacy) frames and paths, map.json.
import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { claim, http, listenLocal, putAction, startFarm } from './fixtures/test-farm.js'
import { openWs, type WsClient } from './fixtures/ws-client.js'
import type { KernelHandle, SiteHandle } from '../core/plugin-api.js'
import type { Page } from '../schemas/page.js'

const PLUGINS = fileURLToPath(new URL('../plugins/', import.meta.url))
const A = 'a.example'
const B = 'b.example'
const V1 = 'wikifarm.v1'

type LinkMap = Record<string, string[]>
type Msg = { type: string; data?: unknown }

async function linkFarm(t: Test) {
  const farm = await startFarm(t, { farm: true, plugins: { txtzyme: { enabled: false } } }, undefined, {
    builtinPluginsDir: PLUGINS,
  })
  t.equal(farm.kernel.plugins.get('linkmap')?.state, 'running', 'linkmap launched')
  const port = await listenLocal(farm)
  return { ...farm, port }
}

const create = (title: string) => ({ type: 'create', item: { title }, date: 1 })
const add = (id: string, text: string) => ({ type: 'add', id, item: { type: 'paragraph', id, text } })
const edit = (id: string, text: string) => ({ type: 'edit', id, item: { type: 'paragraph', id, text } })

async function mapJson(port: number, host: string): Promise<LinkMap> {
  const res = await http(port, 'GET', '/plugin/linkmap/map.json', host)
  if (res.status !== 200) throw new Error(`map.json on ${host}: ${res.status} ${res.body}`)
  return JSON.parse(res.body) as LinkMap
}

/** Nothing more arrives on these clients within a while. */
async function quiet(t: Test, clients: WsClient[], ms = 150): Promise<void> {
  const counts = clients.map((c) => c.received.length)
  await new Promise((resolve) => setTimeout(resolve, ms))
  t.same(clients.map((c) => c.received.length), counts, 'and nothing else arrives')
}

t.test('two sites get their own maps and only their own updates; edits and deletes are one update each', async (t) => {
  const farm = await linkFarm(t)
  const ownerA = await claim(t, farm.app, A)
  const ownerB = await claim(t, farm.app, B)
  const put = (host: string, cookie: string, slug: string, action: unknown) =>
    putAction(farm.app, host, cookie, slug, action).then((res) =>
      t.equal(res.statusCode, 200, `${host} ${slug} ${(action as Msg).type}`),
    )
  await put(A, ownerA.cookie, 'alpha', create('Alpha'))
  await put(
    A,
    ownerA.cookie,
    'alpha',
    add('00000000000000a1', 'See [[Beta Page]] and [[Gamma!]] and [[Beta Page]] again.'),
  )
  await put(B, ownerB.cookie, 'other', create('Other'))
  await put(B, ownerB.cookie, 'other', add('00000000000000b1', 'Only [[Delta]] here.'))

  const before = { a: await mapJson(farm.port, A), b: await mapJson(farm.port, B) }
  t.same(before.a.alpha, ['beta-page', 'gamma'], 'links are slugged and deduplicated, in order')
  t.notOk('other' in before.a, 'a\'s map has no page of b')
  t.same(before.b.other, ['delta'])
  t.notOk('alpha' in before.b, 'b\'s map has no page of a')

  const a1 = await openWs(farm.port, '/plugin/linkmap', A, { protocols: V1 })
  const a2 = await openWs(farm.port, '/plugin/linkmap/', A, { protocols: V1 })
  const b1 = await openWs(farm.port, '/plugin/linkmap', B, { protocols: V1 })
  t.equal(a1.ws.protocol, V1)
  for (const [client, map] of [[a1, before.a], [a2, before.a], [b1, before.b]] as const) {
    t.same(await client.nextJson(), { type: 'map', data: map }, 'the whole map on connect, as map.json has it')
  }

  // An edit through PUT /page/:slug/action reaches every client of a, as one update.
  await put(A, ownerA.cookie, 'alpha', edit('00000000000000a1', 'Now [[Epsilon]] only.'))
  for (const client of [a1, a2]) {
    t.same(await client.nextJson(), { type: 'update', data: { slug: 'alpha', links: ['epsilon'] } })
  }
  await quiet(t, [a1, a2, b1])
  t.same(b1.received.length, 1, 'b\'s client saw only its map')

  // An edit that changes no link is not news.
  await put(A, ownerA.cookie, 'alpha', edit('00000000000000a1', 'Still [[Epsilon]] only, reworded.'))
  await quiet(t, [a1, a2, b1])

  // A new page on b reaches b, not a.
  await put(B, ownerB.cookie, 'fresh', create('Fresh'))
  t.same(await b1.nextJson(), { type: 'update', data: { slug: 'fresh', links: [] } })
  await quiet(t, [a1, a2, b1])

  // Deleting a page removes it.
  const del = await farm.app.inject({
    method: 'DELETE',
    url: '/alpha.json',
    headers: { host: A, cookie: ownerA.cookie },
  })
  t.equal(del.statusCode, 200, 'alpha deleted')
  for (const client of [a1, a2]) {
    t.same(await client.nextJson(), { type: 'update', data: { slug: 'alpha', links: null } })
  }
  await quiet(t, [a1, a2, b1])
  const after = { a: await mapJson(farm.port, A), b: await mapJson(farm.port, B) }
  t.notOk('alpha' in after.a, 'map.json no longer has alpha')
  t.same(after.b.fresh, [], 'b\'s map.json has its new page')
  t.same(after.b.other, ['delta'])
  t.notOk('fresh' in after.a)

  // Asking again gives the current map.
  a1.send({ type: 'map', id: 'q1' })
  t.same(await a1.nextJson(), { type: 'map', id: 'q1', data: after.a })

  for (const client of [a1, a2, b1]) client.ws.close()
  await Promise.all([a1, a2, b1].map((c) => c.waitClose()))
})

t.test('plain clients get the whole map as JSON on connect and after each change, on both paths', async (t) => {
  const farm = await linkFarm(t)
  const ownerA = await claim(t, farm.app, A)
  await putAction(farm.app, A, ownerA.cookie, 'alpha', create('Alpha'))
  const start = await mapJson(farm.port, A)

  const plain = await openWs(farm.port, '/plugin/linkmap', A)
  const legacy = await openWs(farm.port, `/plugin/linkmap/${A}`, A)
  // The legacy path names a host, but the Host header chooses the site: no way across.
  const foreign = await openWs(farm.port, `/plugin/linkmap/${A}`, B)
  t.equal(plain.ws.protocol, '', 'no subprotocol for a plain client')
  t.same(JSON.parse(await plain.next()), start)
  t.same(JSON.parse(await legacy.next()), start, 'the legacy path serves the Host\'s site')
  const bMap = JSON.parse(await foreign.next()) as LinkMap
  t.same(bMap, await mapJson(farm.port, B), 'a foreign <host> in the path gets the request\'s own site')
  t.notOk('alpha' in bMap)

  t.equal(
    (await putAction(farm.app, A, ownerA.cookie, 'alpha', add('00000000000000a1', 'To [[Omega]].'))).statusCode,
    200,
  )
  const expected = { ...start, alpha: ['omega'] }
  t.same(JSON.parse(await plain.next()), expected, 'the whole map again after a change')
  t.same(JSON.parse(await legacy.next()), expected)
  await quiet(t, [plain, legacy, foreign])

  for (const client of [plain, legacy, foreign]) client.ws.close()
  await Promise.all([plain, legacy, foreign].map((c) => c.waitClose()))
})

t.test('huge and unbalanced links do not blow up', async (t) => {
  const farm = await linkFarm(t)
  const ownerA = await claim(t, farm.app, A)
  const text = `[[${'x'.repeat(100_000)}]] [[unclosed [[ok]] ]] [[${'[['.repeat(1000)}]] [[!!!]] [[  ]]`
  t.equal((await putAction(farm.app, A, ownerA.cookie, 'weird', create('Weird'))).statusCode, 200)
  t.equal((await putAction(farm.app, A, ownerA.cookie, 'weird', add('00000000000000c1', text))).statusCode, 200)
  const map = await mapJson(farm.port, A)
  // The sitemap's rule (schemas/links.ts pageLinks): a link is [[ then 1 to 300 characters
  // without ] or newline, then ]]; longer ones are not links, and slugs left empty are dropped.
  t.same(map.weird, ['unclosed-ok', '--'], 'only bounded links count, slugged by the federated-wiki rule')
  t.ok(Object.values(map).flat().every((slug) => slug.length <= 300), 'no slug longer than a link may be')
})

// The bookkeeping, with launch called directly on a stub site that counts its reads and can
// hold a page read open: deterministic where real sockets cannot be.
t.test(
  'built once, lazily; events cost no site reads; changes during a build are kept; site.closed evicts',
  async (t) => {
    const { default: linkmap } = await import('../plugins/linkmap/index.js')
    const page = (text: string): Page => ({ title: 't', story: [{ type: 'paragraph', id: '0000000000000001', text }] })
    const pages = new Map<string, Page>([
      ['one', page('[[Two]]')],
      ['two', page('[[One]] [[Three]]')],
    ])
    const reads = { list: 0, get: 0 }
    let hold: Promise<void> | null = null
    const site: SiteHandle = {
      name: A,
      async listSlugs() {
        reads.list++
        return [...pages.keys()]
      },
      async getPage(slug) {
        reads.get++
        if (hold) await hold
        return pages.get(slug) ?? null
      },
      async sitemap() {
        return []
      },
      async applyAction() {
        throw new Error('not used')
      },
      async publish() {
        return 0
      },
    }
    const log = { debug() {}, info() {}, warn() {}, error() {} }
    const kernel: KernelHandle = {
      apiVersion: 1,
      trust: 'site',
      log,
      async sites() {
        return [A]
      },
      async site() {
        return site
      },
    }
    const instance = await linkmap.launch(kernel, {})
    const handler = instance.routes?.find((r) => r.url === '/map.json')?.handler
    if (!handler) throw new Error('no /map.json route')
    const ctx = {
      site,
      log,
      session: { id: 's', isOwner: false, isAdmin: false },
      identity: { page: null, item: null, lineup: [] },
    }
    const getMap = async () =>
      (await handler(
        { method: 'GET', path: '/map.json', params: {}, query: {}, body: undefined, headers: {} },
        ctx,
      )) as LinkMap
    const events = instance.events ?? {}
    // The listeners run synchronously up to their first await, which is what these steps rely on.
    const changed = (slug: string, p: Page) =>
      void events['page.changed']?.(
        { site: A, slug, action: { type: 'edit', id: '0000000000000001', item: p.story[0] } as never, page: p },
        { site },
      )
    const deleted = (slug: string) => void events['page.deleted']?.({ site: A, slug }, { site })

    changed('one', page('[[Ignored]]')) // before any use: no map, nothing read
    t.same(reads, { list: 0, get: 0 }, 'an event before first use reads nothing')
    t.same(await getMap(), { one: ['two'], two: ['one', 'three'] }, "built from the site's pages on first use")
    t.same(reads, { list: 1, get: 2 })
    await getMap()
    t.same(reads, { list: 1, get: 2 }, 'and only once')

    changed('three', page('[[One]]'))
    deleted('two')
    t.same(reads, { list: 1, get: 2 }, 'events read no page of the site')
    t.same(await getMap(), { one: ['two'], three: ['one'] }, 'events kept the map current')

    // site.closed evicts; the next use rebuilds. Changes heard while that build runs are kept.
    void events['site.closed']?.({ site: A }, { site })
    let release = () => {}
    hold = new Promise<void>((resolve) => {
      release = resolve
    })
    const building = getMap()
    await new Promise((resolve) => setTimeout(resolve, 10))
    t.equal(reads.list, 2, 'evicted: the next use lists the site again')
    pages.set('four', page('[[Five]]')) // too late for the build's listing
    changed('four', page('[[Five]]'))
    changed('one', page('[[Six]]')) // the build may read either version
    deleted('two') // the build's listing still has it
    release()
    hold = null
    t.same(await building, { one: ['six'], four: ['five'] }, 'changes during the build win over what it read')
    await instance.close?.()
  },
)
