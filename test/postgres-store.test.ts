// The PostgreSQL page store on a real server: the schema is made and migrated at boot, a farm
// keeps its pages, owner, recycler and sitemap across restarts, a write of a page and its
// sitemap entry is one transaction (a failure of either leaves both as they were, and kill -9
// during a stream of edits leaves no page without its entry), values PostgreSQL cannot hold
// are refused with a code, and an outage answers 503 with a code and heals by itself.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { query, startPostgres } from './fixtures/postgres.js'
import { claim, putAction, startFarm } from './fixtures/test-farm.js'
import { httpCall } from './fixtures/http-client.js'
import { PostgresPageStore } from '../core/pages/postgres-store.js'
import { MIGRATIONS } from '../core/pages/postgres-schema.js'
import { sitemapEntry } from '../core/pages/sitemap.js'
import { PageValidator, type Page } from '../schemas/page.js'

const server = await startPostgres(t)
let databases = 0
const database = () => server!.createDatabase(`store_${++databases}`)
const HOST = 'pg.example'
const ITEM = 'aaaaaaaaaaaaaaaa'

const sql = query

const create = (title: string, date = 1) => ({ type: 'create', item: { title, story: [] }, date })
const add = (text: string, date = 2) => ({ type: 'add', id: ITEM, item: { type: 'paragraph', id: ITEM, text }, date })

if (server) {
  t.test('the schema is created at boot, once, and a newer one is refused', async (t) => {
    const url = await database()
    const first = await PostgresPageStore.open(url)
    t.same(await first.migrate(), [], 'a second migration run finds nothing to do')
    await first.close()
    const rows = await sql<{ version: number }>(url, 'SELECT version FROM wikifarm_migrations ORDER BY version')
    t.same(rows.map((r) => r.version), MIGRATIONS.map((m) => m.version), 'every migration recorded once')
    await sql(url, "INSERT INTO wikifarm_migrations (version, name) VALUES (999, 'from the future')")
    await t.rejects(PostgresPageStore.open(url), { code: 'WIKIFARM_ERR_STORE', message: /version 999.*upgrade wikifarm/ })
  })

  t.test('a farm on PostgreSQL keeps pages, owner, recycler and sitemap across a restart', async (t) => {
    const url = await database()
    const farm = await startFarm(t, { farm: true, allowed: ['*'], store: url })
    const unknown = await farm.app.inject({ url: '/welcome-visitors.json', headers: { host: HOST } })
    t.equal(unknown.statusCode, 404, 'allowed "*" serves only the sites the store has')
    t.equal(unknown.json().code, 'WIKIFARM_ERR_UNKNOWN_SITE')
    await farm.kernel.close()

    const open = await startFarm(t, { farm: true, allowed: [HOST], store: url })
    const owner = await claim(t, open.app, HOST)
    t.equal((await putAction(open.app, HOST, owner.cookie, 'kept', create('Kept'))).statusCode, 200)
    t.equal((await putAction(open.app, HOST, owner.cookie, 'kept', add('See [[Gone]]'))).statusCode, 200)
    t.equal((await putAction(open.app, HOST, owner.cookie, 'gone', create('Gone'))).statusCode, 200)
    const deleted = await open.app.inject({
      method: 'DELETE', url: '/gone.json', headers: { host: HOST, cookie: owner.cookie },
    })
    t.equal(deleted.statusCode, 200, 'delete moves the page to the recycler')
    await open.kernel.close()

    const again = await startFarm(t, { farm: true, allowed: ['*'], store: url })
    const page = await again.app.inject({ url: '/kept.json', headers: { host: HOST } })
    t.equal(page.statusCode, 200, 'the site is in the store now, so allowed "*" serves it')
    t.same((page.json() as Page).story.map((i) => i.text), ['See [[Gone]]'])
    t.same((page.json() as Page).journal?.map((j) => j.type), ['create', 'add'], 'the journal came back with the page')
    const sitemap = await again.app.inject({ url: '/system/sitemap.json', headers: { host: HOST } })
    t.same((sitemap.json() as Array<{ slug: string; links?: object }>).map((e) => [e.slug, e.links]),
      [['kept', { gone: ITEM }]], 'the sitemap has the kept page with its link, not the recycled one')
    const login = await httpLogin(again, owner.secret)
    const recycled = await again.app.inject({
      url: '/recycler/system/slugs.json', headers: { host: HOST, cookie: login },
    })
    t.same((recycled.json() as Array<{ slug: string }>).map((e) => e.slug), ['gone'],
      'the owner logs in again; the recycler kept gone')
    const rows = await sql<{ site: string; slug: string }>(url, 'SELECT site, slug FROM wikifarm_pages ORDER BY slug')
    t.same(rows, [{ site: HOST, slug: 'kept' }], 'rows are keyed by site name')
  })

  t.test('a page and its sitemap entry are one transaction: a failed entry leaves the page as it was', async (t) => {
    const url = await database()
    const farm = await startFarm(t, { farm: true, allowed: [HOST], store: url })
    const { cookie } = await claim(t, farm.app, HOST)
    t.equal((await putAction(farm.app, HOST, cookie, 'atomic', create('Atomic'))).statusCode, 200)
    await sql(url, `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN RAISE EXCEPTION 'sitemap write refused by the test'; END $$`)
    await sql(url,
      'CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON wikifarm_sitemap FOR EACH ROW EXECUTE FUNCTION refuse()')
    const failed = await putAction(farm.app, HOST, cookie, 'atomic', add('never stored'))
    t.equal(failed.statusCode, 500)
    t.equal(failed.json().code, 'WIKIFARM_ERR_STORE', 'a coded store error')
    t.notMatch(failed.body, /postgres:\/\//, 'the reply names no store URL')
    const [row] = await sql<{ body: string }>(url, "SELECT body FROM wikifarm_pages WHERE slug = 'atomic'")
    t.same((JSON.parse(row!.body) as Page).story, [], 'the page row was rolled back with its entry')
    const read = await farm.app.inject({ url: '/atomic.json', headers: { host: HOST } })
    t.same((read.json() as Page).story, [], 'and the farm serves the page as it was')
    const failedNew = await putAction(farm.app, HOST, cookie, 'fresh', create('Fresh'))
    t.equal(failedNew.statusCode, 500)
    t.same(await sql(url, "SELECT slug FROM wikifarm_pages WHERE slug = 'fresh'"), [],
      'a new page is not left without its entry')
    await sql(url, 'DROP TRIGGER refuse ON wikifarm_sitemap')
    t.equal((await putAction(farm.app, HOST, cookie, 'atomic', add('stored'))).statusCode, 200, 'writes work again')
    const sitemap = await farm.app.inject({ url: '/system/sitemap.json', headers: { host: HOST } })
    t.same((sitemap.json() as Array<{ slug: string }>).map((e) => e.slug), ['atomic'])
  })

  t.test('text PostgreSQL cannot hold is refused with a code, and nothing is lost', async (t) => {
    const url = await database()
    const farm = await startFarm(t, { farm: true, allowed: [HOST], store: url })
    const { cookie } = await claim(t, farm.app, HOST)
    t.equal((await putAction(farm.app, HOST, cookie, 'nul', create('Nul'))).statusCode, 200)
    for (const text of ['a\u0000b', 'lone \ud800 surrogate']) {
      const refused = await putAction(farm.app, HOST, cookie, 'nul', add(text))
      t.equal(refused.statusCode, 422, `${JSON.stringify(text)} is refused`)
      t.equal(refused.json().code, 'WIKIFARM_ERR_UNSTORABLE')
    }
    const read = await farm.app.inject({ url: '/nul.json', headers: { host: HOST } })
    t.same((read.json() as Page).story, [], 'the page is as it was')
  })

  t.test('an outage answers 503 with a code; the farm reconnects by itself', async (t) => {
    const url = await database()
    const farm = await startFarm(t, { farm: true, allowed: [HOST], store: url })
    const { cookie } = await claim(t, farm.app, HOST)
    t.equal((await putAction(farm.app, HOST, cookie, 'steady', create('Steady'))).statusCode, 200)
    await server.stop('fast')
    try {
      const read = await farm.app.inject({ url: '/steady.json', headers: { host: HOST } })
      t.equal(read.statusCode, 503, 'a read during the outage')
      t.equal(read.json().code, 'WIKIFARM_ERR_STORE_UNAVAILABLE')
      const write = await putAction(farm.app, HOST, cookie, 'steady', add('during'))
      t.equal(write.statusCode, 503, 'a write during the outage')
    } finally {
      await server.start()
    }
    t.equal((await putAction(farm.app, HOST, cookie, 'steady', add('after'))).statusCode, 200, 'a write after it')
    const read = await farm.app.inject({ url: '/steady.json', headers: { host: HOST } })
    t.same((read.json() as Page).story.map((i) => i.text), ['after'], 'nothing from the outage, everything after')
  })

  t.test('kill -9 during a stream of edits: every acknowledged edit is kept, every page has its entry', async (t) => {
    const url = await database()
    const secret = 'c'.repeat(64)
    const seed = await PostgresPageStore.open(url)
    await seed.site({ name: HOST, root: '' })
      .writeStatus('owner.json', JSON.stringify({ name: 'Crash', friend: { secret } }))
    await seed.close()
    const acked = new Map<string, number>()
    let version = 0
    for (let round = 0; round < 3; round++) {
      const { child, port } = await startChild(url)
      const login = await httpCall(port, {
        method: 'POST', path: '/auth/reclaim/', headers: { host: HOST, 'content-type': 'text/plain' }, body: secret,
      })
      const cookie = String(login.headers['set-cookie'] ?? '').split(';')[0] ?? ''
      const writers = ['one', 'two', 'three', 'four'].map(async (slug) => {
        for (;;) {
          const v = ++version
          const item = { type: 'paragraph', id: ITEM, text: `v${v}` }
          const action = acked.has(slug) ? { type: 'edit', id: ITEM, item, date: v }
            : { type: 'create', item: { title: slug, story: [item] }, date: v }
          const response = await httpCall(port, {
            method: 'PUT', path: `/page/${slug}/action`,
            headers: { host: HOST, cookie, 'content-type': 'application/x-www-form-urlencoded' },
            body: `action=${encodeURIComponent(JSON.stringify(action))}`,
          }).catch(() => null)
          if (!response) return
          if (response.status === 200) acked.set(slug, v)
        }
      })
      await new Promise((resolve) => setTimeout(resolve, 300 + round * 100))
      child.kill('SIGKILL')
      await once(child, 'exit')
      await Promise.all(writers)
    }
    const pages = await sql<{ slug: string; body: string }>(url, 'SELECT slug, body FROM wikifarm_pages ORDER BY slug')
    const entryRows = await sql<{ slug: string; entry: object }>(url, 'SELECT slug, entry FROM wikifarm_sitemap')
    const entries = new Map(entryRows.map((r) => [r.slug, r.entry]))
    t.ok(acked.size > 0, `edits were acknowledged (${[...acked.values()].join(', ')})`)
    for (const { slug, body } of pages) {
      const page = JSON.parse(body) as Page
      t.ok(PageValidator.Check(page), `${slug} is a whole page`)
      t.same(entries.get(slug), sitemapEntry(slug, page), `${slug}'s sitemap entry is the one of its stored version`)
      const text = String(page.story[0]?.text ?? '')
      t.ok(Number(text.slice(1)) >= (acked.get(slug) ?? 0), `${slug} holds its last acknowledged edit or a later one`)
    }
    const stored = new Set(pages.map((p) => p.slug))
    t.ok([...acked.keys()].every((slug) => stored.has(slug)), 'every acknowledged page exists')
    t.equal(entries.size, pages.length, 'no entry without its page')
  })
}

async function httpLogin(farm: Awaited<ReturnType<typeof startFarm>>, secret: string): Promise<string> {
  const response = await farm.app.inject({
    method: 'POST', url: '/auth/reclaim/', headers: { host: HOST, 'content-type': 'text/plain' }, payload: secret,
  })
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode} ${response.body}`)
  return String(response.headers['set-cookie'] ?? '').split(';')[0] as string
}

async function startChild(store: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'fixtures/farm-child.js')], {
    env: {
      ...process.env,
      WIKIFARM_TEST_CONFIG: JSON.stringify({ data: '/nonexistent', store, farm: true, allowed: [HOST] }),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const [chunk] = await once(child.stdout!, 'data') as [Buffer]
  return { child, port: Number(chunk.toString().trim()) }
}
