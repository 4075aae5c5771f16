// One farm, three nodes on one PostgreSQL store, behind HAProxy configured as docs/scale-out.md
// says (docs/haproxy.cfg, test/fixtures/haproxy.ts): an edit through any node reads back through
// every node at once (page, sitemap, search index, owner); a cookie signed on one node is honoured
// on the others, and a logout on one ends the login on all; a push subscriber and a Linkmap socket
// on node B see an edit made on node A; PostgreSQL restarts (503 with a code meanwhile, nodes
// reconnect by themselves, nothing acknowledged lost); kill -9 of a node during a stream of edits
// through HAProxy (its sites move, no acknowledged edit lost, no page torn).
import t from 'tap'
import type { Page } from '../schemas/page.js'
import { PageValidator } from '../schemas/page.js'
import { startPostgres, query } from './fixtures/postgres.js'
import { startNodes, type FarmNode } from './fixtures/farm-nodes.js'
import { startHaproxy } from './fixtures/haproxy.js'
import { httpCall, type HttpResult } from './fixtures/http-client.js'
import { eventually, openWs } from './fixtures/ws-client.js'
import { itemId } from './fixtures/test-farm.js'

const HOSTS = Array.from({ length: 12 }, (_, i) => `site${i + 1}.test`)
const [HOST] = HOSTS as [string]
const FORM = 'application/x-www-form-urlencoded'

const server = await startPostgres(t)
if (server) {
  const url = await server.createDatabase('multinode')
  const nodes = await startNodes(t, 3, url, { allowed: HOSTS, trustProxy: true })
  const [a, b, c] = nodes as [FarmNode, FarmNode, FarmNode]
  const proxy = await startHaproxy(t, nodes.map((n) => n.port))
  if (proxy) await run(url, a, b, c, proxy.port)
}

function get(port: number, path: string, host: string, cookie?: string): Promise<HttpResult> {
  return httpCall(port, { path, headers: cookie ? { host, cookie } : { host } })
}

function put(port: number, host: string, cookie: string, slug: string, action: unknown): Promise<HttpResult> {
  return httpCall(port, {
    method: 'PUT', path: `/page/${slug}/action`, headers: { host, cookie, 'content-type': FORM },
    body: `action=${encodeURIComponent(JSON.stringify(action))}`,
  })
}

function cookieOf(response: HttpResult): string {
  const header = response.headers['set-cookie']
  const first = Array.isArray(header) ? header[0] : header
  if (typeof first !== 'string') throw new Error(`no cookie: ${response.status} ${response.body}`)
  return first.split(';')[0] as string
}

const paragraph = (n: number, text: string) => ({ type: 'paragraph', id: itemId(n), text })

async function run(url: string, a: FarmNode, b: FarmNode, c: FarmNode, front: number): Promise<void> {
  const nodes = [a, b, c]
  const claimed = await httpCall(a.port, { method: 'POST', path: '/login', headers: { host: HOST } })
  t.equal(claimed.status, 200, `${HOST} claimed on node A`)
  const secret = (JSON.parse(claimed.body) as { secret: string }).secret
  const owner = cookieOf(claimed)

  t.test('health: every node is ready, and says which node it is', async (t) => {
    for (const node of nodes) {
      const health = await get(node.port, '/system/health', 'anything.example')
      t.equal(health.status, 200, `${node.name} is ready`)
      const body = JSON.parse(health.body) as { live: boolean; ready: boolean; store: Record<string, unknown> }
      t.match(body, { live: true, ready: true, store: { type: 'postgres', reachable: true, events: 'listening' } })
    }
  })

  t.test('the owner and the cookie hold on every node at once', async (t) => {
    for (const node of [b, c]) {
      const again = await httpCall(node.port, { method: 'POST', path: '/login', headers: { host: HOST } })
      t.equal(again.status, 501, `${node.name} knows the site is claimed`)
      t.match(JSON.parse(again.body), { code: 'WIKIFARM_ERR_ALREADY_CLAIMED' })
      const session = JSON.parse((await get(node.port, '/system/session.json', HOST, owner)).body) as
        { claimed: boolean; isOwner: boolean }
      t.match(session, { claimed: true, isOwner: true }, `${node.name} honours the cookie node A signed`)
    }
  })

  t.test('an edit through any node reads back through every node at once', async (t) => {
    let n = 0
    for (const writer of [a, b, c]) {
      const slug = `from-${writer.name}`
      const words = `needle${writer.name.slice(4)}q` // one search term (MiniSearch splits at dashes)
      t.equal((await put(writer.port, HOST, owner, slug,
        { type: 'create', item: { title: slug, story: [paragraph(++n, words)] } })).status, 200)
      for (const reader of nodes) {
        const page = await get(reader.port, `/${slug}.json`, HOST)
        t.equal(page.status, 200, `${reader.name} reads ${slug}`)
        const sitemap = JSON.parse((await get(reader.port, '/system/sitemap.json', HOST)).body) as { slug: string }[]
        t.ok(sitemap.some((e) => e.slug === slug), `${reader.name}'s sitemap has ${slug}`)
        const index = (await get(reader.port, '/system/site-index.json', HOST)).body
        t.ok(index.includes(`"${words}"`), `${reader.name}'s search index has ${words}`)
      }
      // An edit of the same page on the next node, read back on every node.
      const next = nodes[(nodes.indexOf(writer) + 1) % 3] as FarmNode
      t.equal((await put(next.port, HOST, owner, slug, { type: 'edit', id: itemId(n), item: paragraph(n, 'edited') }))
        .status, 200)
      for (const reader of nodes) {
        const page = JSON.parse((await get(reader.port, `/${slug}.json`, HOST)).body) as Page
        t.equal(page.story[0]?.text, 'edited', `${reader.name} reads ${next.name}'s edit`)
      }
    }
    // Through HAProxy as well, then straight from each node.
    t.equal((await put(front, HOST, owner, 'via-proxy', { type: 'create', item: { title: 'Via proxy' } })).status, 200)
    for (const reader of nodes) {
      const sitemap = JSON.parse((await get(reader.port, '/system/sitemap.json', HOST)).body) as { slug: string }[]
      t.ok(sitemap.some((e) => e.slug === 'via-proxy'), `${reader.name} sees the edit made through HAProxy`)
    }
  })

  t.test('a push subscriber and a Linkmap socket on node B see an edit made on node A', async (t) => {
    t.equal((await put(a.port, HOST, owner, 'linked', { type: 'create', item: { title: 'Linked' } })).status, 200)
    const push = await openWs(b.port, '/system/push', HOST)
    t.teardown(() => push.ws.close())
    push.send({ type: 'subscribe', data: { key: 'linked' } })
    t.match(await push.nextJson(3000), { type: 'subscribed' })
    const linkmap = await openWs(b.port, '/plugin/linkmap/', HOST)
    t.teardown(() => linkmap.ws.close())
    const first = JSON.parse(await linkmap.next(3000)) as Record<string, string[]>
    t.same(first.linked, [], 'node B\'s map has the page, without links')
    t.equal((await put(a.port, HOST, owner, 'linked',
      { type: 'add', id: itemId(50), item: paragraph(50, 'See [[Far Page]]') })).status, 200)
    const update = JSON.parse(await linkmap.next(3000)) as Record<string, string[]>
    t.same(update.linked, ['far-page'], 'the Linkmap socket on B hears A\'s edit')
    t.match(await push.nextJson(3000), { type: 'published', data: { key: 'linked', value: { links: ['far-page'] } } },
      'the push subscriber on B hears it too')
  })

  t.test('a logout on one node ends the login on every node', async (t) => {
    const login = await httpCall(c.port, {
      method: 'POST', path: '/auth/reclaim/', headers: { host: HOST, 'content-type': 'text/plain' }, body: secret,
    })
    const second = cookieOf(login)
    t.equal((await put(b.port, HOST, second, 'before-logout', { type: 'create', item: { title: 'x' } })).status, 200)
    t.equal((await get(a.port, '/logout', HOST, second)).status, 200, 'logged out on node A')
    for (const node of nodes) {
      const refused = await put(node.port, HOST, second, 'after-logout', { type: 'create', item: { title: 'x' } })
      t.equal(refused.status, 403, `${node.name} no longer honours the login`)
    }
  })

  // A login after the logout above (subtests run in order; this runs when called).
  const login = async (): Promise<string> => cookieOf(await httpCall(b.port, {
    method: 'POST', path: '/auth/reclaim/', headers: { host: HOST, 'content-type': 'text/plain' }, body: secret,
  }))

  t.test('PostgreSQL restarts: 503 with a code meanwhile, nodes reconnect, nothing acknowledged is lost', async (t) => {
    const fresh = await login()
    t.equal((await put(front, HOST, fresh, 'steady', { type: 'create', item: { title: 'Steady' } })).status, 200)
    await server!.stop('fast')
    try {
      for (const node of nodes) {
        const read = await get(node.port, '/steady.json', HOST)
        t.equal(read.status, 503, `${node.name}: a read during the outage`)
        t.equal((JSON.parse(read.body) as { code: string }).code, 'WIKIFARM_ERR_STORE_UNAVAILABLE')
        const write = await put(node.port, HOST, fresh, 'steady', { type: 'add', id: itemId(60),
          item: paragraph(60, 'during') })
        t.equal(write.status, 503, `${node.name}: a write during the outage`)
        const health = await get(node.port, '/system/health', 'x')
        t.equal(health.status, 503, `${node.name} reports itself not ready`)
      }
    } finally {
      await server!.start()
    }
    await eventually(async () => (await Promise.all(nodes.map((n) => n.healthy()))).every(Boolean), 8000,
      'every node ready again')
    for (const node of nodes) {
      t.equal((await put(node.port, HOST, fresh, 'steady', { type: 'add', id: itemId(61 + nodes.indexOf(node)),
        item: paragraph(61 + nodes.indexOf(node), `after-${node.name}`) })).status, 200, `${node.name} writes again`)
    }
    for (const node of nodes) {
      const page = JSON.parse((await get(node.port, '/steady.json', HOST)).body) as Page
      t.same(page.story.map((i) => i.text).sort(), ['after-node1', 'after-node2', 'after-node3'],
        `${node.name}: nothing from the outage, everything after`)
      const sitemap = JSON.parse((await get(node.port, '/system/sitemap.json', HOST)).body) as { slug: string }[]
      t.ok(sitemap.some((e) => e.slug === 'from-node1'), `${node.name}: earlier pages are all there`)
    }
  })

  t.test('kill -9 of a node during a stream of edits through HAProxy: no acknowledged edit lost', async (t) => {
    // Every site claimed through HAProxy, so each lands on the node its Host hashes to.
    const cookies = new Map<string, string>([[HOST, await login()]])
    for (const host of HOSTS.slice(1)) {
      const response = await httpCall(front, { method: 'POST', path: '/login', headers: { host } })
      t.equal(response.status, 200, `${host} claimed through HAProxy`)
      cookies.set(host, cookieOf(response))
    }
    const acked = new Map<string, number>()
    let version = 0
    let stop = false
    const writers = HOSTS.map(async (host) => {
      const cookie = cookies.get(host) as string
      while (!stop) {
        const v = ++version
        const key = `${host}/stream`
        const action = acked.has(key) ? { type: 'edit', id: itemId(1), item: paragraph(1, `v${v}`) }
          : { type: 'create', item: { title: 'Stream', story: [paragraph(1, `v${v}`)] } }
        const response = await put(front, host, cookie, 'stream', action).catch(() => null)
        if (response?.status === 200) acked.set(key, v)
        else await new Promise((resolve) => setTimeout(resolve, 20))
      }
    })
    await new Promise((resolve) => setTimeout(resolve, 600))
    b.child.kill('SIGKILL')
    const killedAt = Date.now()
    await new Promise((resolve) => setTimeout(resolve, 2500))
    stop = true
    await Promise.all(writers)
    // HAProxy moved node B's sites: every site takes an edit again, through the same front.
    for (const host of HOSTS) {
      const key = `${host}/stream`
      let status = 0
      await eventually(async () => {
        const v = ++version
        const response = await put(front, host, cookies.get(host) as string, 'stream',
          { type: 'edit', id: itemId(1), item: paragraph(1, `v${v}`) }).catch(() => null)
        status = response?.status ?? 0
        if (status === 200) acked.set(key, v)
        return status === 200
      }, 5000, `${host} takes edits`).catch(() => {})
      t.equal(status, 200, `${host} takes edits after node B died`)
    }
    t.ok(Date.now() - killedAt < 20_000, 'bounded')
    const rows = await query<{ site: string; body: string }>(url,
      'SELECT site, body FROM wikifarm_pages WHERE slug = $1', ['stream'])
    t.equal(rows.length, HOSTS.length, 'every site has its page')
    for (const { site, body } of rows) {
      const page = JSON.parse(body) as Page
      t.ok(PageValidator.Check(page), `${site}: a whole page`)
      const stored = Number(String(page.story[0]?.text ?? '').slice(1))
      t.ok(stored >= (acked.get(`${site}/stream`) ?? 0), `${site} holds its last acknowledged edit or a later one`)
      const read = JSON.parse((await get(front, '/stream.json', site)).body) as Page
      t.same(read, page, `${site} reads back through HAProxy as stored`)
    }
  })
}
