// Events across nodes on one PostgreSQL store (core/cluster/, core/pages/store-notices.ts), two
// kernels in this process standing for two nodes: a notice is sent on commit only, carries ids and
// never the page, stays under PostgreSQL's 8000 bytes whatever the slug or host, is never applied
// twice by the node that wrote it, and a node whose LISTEN connection is cut reconnects by itself
// and reads again what it kept (a change made while it was away is not missed).
import t from 'tap'
import pg from 'pg'
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { HAPROXY_CFG, findHaproxy, haproxyConfig } from './fixtures/haproxy.js'
import { freePort } from './fixtures/ports.js'
import { httpCall, type HttpResult } from './fixtures/http-client.js'
import { MAX_NOTICE_BYTES, NOTICE_CHANNEL, encodeNotice, parseNotice } from '../core/pages/store-notices.js'
import { PostgresPageStore } from '../core/pages/postgres-store.js'
import { startPostgres, query } from './fixtures/postgres.js'
import { claim, putAction, startFarm } from './fixtures/test-farm.js'
import { eventually } from './fixtures/ws-client.js'

const DOCS = join(import.meta.dirname, '..', '..', 'docs')

t.test('a notice fits under 8000 bytes whatever it names, and hostile payloads are refused', async (t) => {
  const page = { k: 'page', n: 'node', s: 'a.example', p: 'welcome', c: true, a: { type: 'add', id: 'ab'.repeat(8) } }
  const json = encodeNotice(page as never)
  t.same(parseNotice(json ?? ''), page, 'a page notice round-trips')
  const longSlug = encodeNotice({ k: 'page', n: 'node', s: 'a.example', p: 'x'.repeat(9000) })
  t.ok(longSlug !== null && Buffer.byteLength(longSlug) <= MAX_NOTICE_BYTES, 'a long slug: under the limit')
  t.same(parseNotice(longSlug ?? ''), { k: 'site', n: 'node', s: 'a.example' }, '…as "the site changed"')
  const longHost = encodeNotice({ k: 'status', n: 'node', s: 'h'.repeat(7950), f: 'owner.json' })
  t.ok(longHost === null || Buffer.byteLength(longHost) <= MAX_NOTICE_BYTES, 'a long host: under the limit or none')
  t.equal(encodeNotice({ k: 'delete', n: 'node', s: 'h'.repeat(9000), p: 'x' }), null, 'no site fits: nothing sent')
  for (const bad of ['', 'null', '[]', '{"k":"page"}', '{"k":"page","n":"x","s":"a"}', '{"k":"nope","n":"x"}',
    '{"k":"sync","n":"x","t":"1"}', `{"k":"site","n":"${'x'.repeat(100)}","s":"a"}`, '{"__proto__":{"k":"site"}}']) {
    t.equal(parseNotice(bad), null, `refused: ${bad.slice(0, 40)}`)
  }
  t.same(parseNotice('{"k":"page","n":"x","s":"a","p":"b","a":{"type":"edit","item":{"text":"big"}}}'),
    { k: 'page', n: 'x', s: 'a', p: 'b', a: { type: 'edit' } }, 'an action keeps its type, id and date only')
})

t.test('docs/scale-out.md shows docs/haproxy.cfg as it is, and HAProxy accepts it', async (t) => {
  const doc = readFileSync(join(DOCS, 'scale-out.md'), 'utf8')
  const block = /```haproxy\n([\s\S]*?)```/.exec(doc)?.[1]
  t.equal(block, readFileSync(HAPROXY_CFG, 'utf8'), 'the block in the guide is the file the tests run')
  const bin = findHaproxy()
  if (!bin) return
  const checked = spawnSync(bin, ['-c', '-f', HAPROXY_CFG], { encoding: 'utf8' })
  t.equal(checked.status, 0, `haproxy -c: ${checked.stdout}${checked.stderr}`)
  for (const rule of ['balance hdr(host)', 'hash-type consistent', 'timeout tunnel', 'uri /system/health']) {
    t.ok(block?.includes(rule), rule)
  }
})

t.test('with every node down, HAProxy answers 503 with a code, as a node does', async (t) => {
  const bin = findHaproxy()
  if (!bin) return
  const [front, dead] = [await freePort(), await freePort()]
  const file = join(t.testdir(), 'haproxy.cfg')
  writeFileSync(file, haproxyConfig(front, [dead]))
  const child = spawn(bin, ['-db', '-f', file], { stdio: 'ignore' })
  t.teardown(() => { child.kill('SIGKILL') })
  let answer: HttpResult | null = null
  await eventually(async () => {
    answer = await httpCall(front, { path: '/welcome-visitors.json', headers: { host: 'a.example' } }).catch(() => null)
    return answer?.status === 503
  }, 10_000, 'HAProxy answering')
  if (!answer) return
  t.match((answer as HttpResult).headers['content-type'], /application\/json/)
  t.match(JSON.parse((answer as HttpResult).body) as object, { code: 'WIKIFARM_ERR_NO_NODE', error: /No wikifarm node is up/ })
})

const server = await startPostgres(t)
if (server) {
  const HOST = 'a.example'
  let databases = 0
  const database = () => server.createDatabase(`cluster_${++databases}`)

  t.test('notices are sent on commit only, carry ids only, and fit whatever the slug', async (t) => {
    const url = await database()
    const store = await PostgresPageStore.open(url, { nodeId: 'writer' })
    t.teardown(() => store.close())
    const listener = new pg.Client({ connectionString: url })
    await listener.connect()
    t.teardown(() => listener.end())
    const heard: string[] = []
    listener.on('notification', (m) => { if (m.payload) heard.push(m.payload) })
    await listener.query(`LISTEN ${NOTICE_CHANNEL}`)
    const site = store.site({ name: HOST, root: '' })
    const text = 'secret words of the page '.repeat(20)
    await site.updatePage('one', () => ({ title: 'One', story: [{ type: 'paragraph', id: 'a'.repeat(16), text }] }),
      { action: { type: 'create' } })
    await t.rejects(site.updatePage('two', () => { throw new Error('refused') }), /refused/)
    const long = 'l'.repeat(9000)
    await site.updatePage(long, () => ({ title: 'Long', story: [] }))
    await site.writeStatus('owner.json', '{}')
    await site.recyclePage('one')
    await eventually(() => heard.length >= 4, 3000, 'four notices')
    const notices = heard.map((p) => parseNotice(p))
    t.same(notices, [
      { k: 'page', n: 'writer', s: HOST, p: 'one', c: true, a: { type: 'create' } },
      { k: 'site', n: 'writer', s: HOST },
      { k: 'status', n: 'writer', s: HOST, f: 'owner.json' },
      { k: 'delete', n: 'writer', s: HOST, p: 'one' },
    ], 'one per committed write, none for the refused one, a long slug as "the site changed"')
    t.ok(heard.every((p) => !p.includes('secret words') && Buffer.byteLength(p) < 8000), 'ids only, never the page')
  })

  t.test('two nodes: each applies the other\'s changes once, never its own', async (t) => {
    const url = await database()
    const a = await startFarm(t, { farm: true, allowed: [HOST], store: url })
    const b = await startFarm(t, { farm: true, allowed: [HOST], store: url })
    const { cookie } = await claim(t, a.app, HOST)
    const read = (farm: typeof a, path: string) => farm.app.inject({ url: path, headers: { host: HOST } })
    t.equal((await read(b, '/system/sitemap.json')).json().length, 0, 'node B opens the site')
    const heardOnB: string[] = []
    b.kernel.events.on('page.changed', (e) => { heardOnB.push(`${e.slug}:${e.action.type}`) })
    const heardOnA: string[] = []
    a.kernel.events.on('page.changed', (e) => { heardOnA.push(`${e.slug}:${e.action.type}`) })
    t.equal((await putAction(a.app, HOST, cookie, 'news', { type: 'create', item: { title: 'News' } })).statusCode, 200)
    t.same((await read(b, '/system/sitemap.json')).json().map((e: { slug: string }) => e.slug), ['news'],
      'node B\'s sitemap has it at once')
    await eventually(() => heardOnB.length === 1, 3000, 'B heard it')
    t.same(heardOnB, ['news:create'], 'B\'s bus got page.changed with the action\'s type')
    t.same(heardOnA, ['news:create'], 'A\'s bus got it once: its own notice is not applied again')
    t.equal(a.kernel.cluster?.applied, 0, 'node A applied no notice of its own')
    t.ok((b.kernel.cluster?.applied ?? 0) >= 1, 'node B applied A\'s')
  })

  t.test('a node whose LISTEN connection is cut reconnects and misses nothing', async (t) => {
    const url = await database()
    const a = await startFarm(t, { farm: true, allowed: [HOST], store: url })
    const b = await startFarm(t, { farm: true, allowed: [HOST], store: url })
    const { cookie } = await claim(t, a.app, HOST)
    const sitemapOnB = async () => (await b.app.inject({ url: '/system/sitemap.json', headers: { host: HOST } }))
    t.equal((await sitemapOnB()).json().length, 0)
    const nodeB = b.kernel.cluster?.nodeId
    // Cut every LISTEN connection, then write on A while B's is down: B never hears that notice.
    await query(url, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
      ['wikifarm-listen'])
    t.equal((await putAction(a.app, HOST, cookie, 'missed', { type: 'create', item: { title: 'Missed' } })).statusCode,
      200)
    const answer = await sitemapOnB()
    t.equal(answer.statusCode, 200, 'B answers (it waited for its connection, or read afresh)')
    t.same(answer.json().map((e: { slug: string }) => e.slug), ['missed'], 'B\'s sitemap has the change it missed')
    await eventually(() => b.kernel.cluster?.state === 'listening', 5000, 'B listening again')
    t.ok((b.kernel.cluster?.resyncs ?? 0) >= 1, 'B resynchronised after reconnecting')
    t.equal(b.kernel.cluster?.nodeId, nodeB, 'the same node')
  })
}
