// A farm on 127.0.0.1, used over real HTTP the way a wiki client uses it: visit, claim,
// write, read back, delete, recycle, log out and in again; concurrent writers lose nothing.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Page } from '../schemas/page.js'
import { drawFlag } from '../core/client/favicon.js'
import { http, itemId, listDir, listenLocal, startFarm, type HttpResponse } from './fixtures/test-farm.js'

const HOST = 'a.example'
const FORM = 'application/x-www-form-urlencoded'
const para = (n: number, text: string) => ({ type: 'paragraph', id: itemId(n), text })

function cookieOf(response: HttpResponse): string {
  const header = response.headers['set-cookie']
  const first = Array.isArray(header) ? header[0] : header
  return (first ?? '').split(';')[0] ?? ''
}

t.test('a wiki session over HTTP', async (t) => {
  const farm = await startFarm(t, { farm: true, allowed: [HOST, 'b.example'] })
  const port = await listenLocal(farm)
  const req = (
    method: string,
    path: string,
    options: { cookie?: string; type?: string; body?: string; host?: string; origin?: string } = {},
  ) => {
    const headers: Record<string, string> = {}
    if (options.cookie) headers.cookie = options.cookie
    if (options.type) headers['content-type'] = options.type
    if (options.origin) headers.origin = options.origin
    return http(port, method, path, options.host ?? HOST, { headers, body: options.body })
  }
  const act = (cookie: string, slug: string, action: unknown) =>
    req('PUT', `/page/${slug}/action`, {
      cookie,
      type: FORM,
      body: `action=${encodeURIComponent(JSON.stringify(action))}`,
      origin: `http://${HOST}`,
    })

  const first = await req('GET', '/')
  t.equal(first.status, 302)
  t.equal(first.headers.location, 'welcome-visitors.html')
  const visit = await req('GET', '/welcome-visitors.json')
  t.equal(visit.status, 200)
  t.equal(visit.headers['access-control-allow-origin'], '*')
  t.equal((JSON.parse(visit.body) as Page).title, 'Welcome Visitors')

  const login = await req('POST', '/login', { cookie: cookieOf(visit), origin: `http://${HOST}` })
  t.equal(login.status, 200)
  const { ownerName, secret } = JSON.parse(login.body) as { ownerName: string; secret: string }
  const owner = cookieOf(login)
  t.match(String(login.headers['set-cookie']), /HttpOnly; SameSite=Lax/)

  t.equal((await act(owner, 'journal-test', { type: 'create', item: { title: 'Journal Test' }, date: 1 })).status, 200)
  for (const [n, after] of [[1, undefined], [2, 1], [3, 2]] as const) {
    const action = {
      type: 'add',
      id: itemId(n),
      item: para(n, `item ${n}`),
      after: after === undefined ? undefined : itemId(after),
      date: 1 + n,
    }
    t.equal((await act(owner, 'journal-test', action)).status, 200, `add ${n}`)
  }
  t.equal(
    (
      await act(owner, 'journal-test', {
        type: 'edit',
        id: itemId(2),
        item: para(2, 'edited [[Welcome Visitors]]'),
        date: 10,
      })
    ).status,
    200,
  )
  t.equal(
    (
      await act(owner, 'journal-test', {
        type: 'move',
        id: itemId(3),
        order: [itemId(3), itemId(1), itemId(2)],
        date: 11,
      })
    ).status,
    200,
  )
  t.equal((await act(owner, 'journal-test', { type: 'remove', id: itemId(1), date: 12 })).status, 200)
  const page = JSON.parse((await req('GET', '/journal-test.json')).body) as Page
  t.same(page.story, [para(3, 'item 3'), para(2, 'edited [[Welcome Visitors]]')])
  t.same(page.journal?.map((e) => e.type), ['create', 'add', 'add', 'add', 'edit', 'move', 'remove'])
  t.same(JSON.parse(await readFile(join(farm.data, HOST, 'pages', 'journal-test'), 'utf8')), page, 'on disk as served')

  t.same(JSON.parse((await req('GET', '/system/sitemap.json')).body), [
    {
      slug: 'journal-test',
      title: 'Journal Test',
      date: 12,
      synopsis: 'item 3',
      links: { 'welcome-visitors': itemId(2) },
    },
  ])
  t.match((await req('GET', '/sitemap.xml')).body, `<loc>http://${HOST}/journal-test.html</loc>`)
  t.same(JSON.parse((await req('GET', '/system/slugs.json')).body), ['journal-test'])

  const foreign = await req('PUT', '/page/journal-test/action', {
    cookie: owner,
    type: FORM,
    origin: 'http://evil.example',
    body: `action=${encodeURIComponent(JSON.stringify({ type: 'remove', id: itemId(3) }))}`,
  })
  t.equal(foreign.status, 403)
  t.equal(JSON.parse(foreign.body).code, 'WIKIFARM_ERR_FOREIGN_ORIGIN')
  t.equal(
    (await act(cookieOf(visit), 'journal-test', { type: 'remove', id: itemId(3) })).status,
    403,
    'another visitor',
  )
  t.equal(
    (
      await req('PUT', '/page/journal-test/action', {
        cookie: owner,
        type: FORM,
        host: 'b.example',
        body: `action=${encodeURIComponent(JSON.stringify({ type: 'create', item: { title: 'B' } }))}`,
      })
    ).status,
    403,
    'the cookie is for a.example only',
  )

  const png = drawFlag('e2e')
  const favicon = await req('POST', '/favicon.png', {
    cookie: owner,
    type: 'application/json',
    body: JSON.stringify({ image: `data:image/png;base64,${png.toString('base64')}` }),
  })
  t.equal(favicon.status, 200)
  t.same(await readFile(join(farm.data, HOST, 'status', 'favicon.png')), png)

  t.equal((await req('DELETE', '/journal-test.json', { cookie: owner })).status, 200)
  t.equal((await req('GET', '/journal-test.json')).status, 404)
  t.same(JSON.parse((await req('GET', '/recycler/system/slugs.json', { cookie: owner })).body), [
    { slug: 'journal-test', title: 'Journal Test' },
  ])
  t.same(JSON.parse((await req('GET', '/recycler/journal-test.json', { cookie: owner })).body), page)
  t.equal((await req('DELETE', '/recycler/journal-test.json', { cookie: owner })).status, 200)
  t.same(await listDir(join(farm.data, HOST, 'recycle')), [])
  t.same(JSON.parse((await req('GET', '/system/sitemap.json')).body), [])

  const logout = await req('GET', '/logout', { cookie: owner })
  t.equal(logout.status, 200)
  const anon = cookieOf(logout)
  t.equal((await act(anon, 'after-logout', { type: 'create', item: { title: 'No' } })).status, 403)
  const back = await req('POST', '/auth/reclaim/', { cookie: anon, type: 'text/plain;charset=UTF-8', body: secret })
  t.equal(back.status, 200)
  t.equal(JSON.parse(back.body).ownerName, ownerName)
  t.equal((await act(cookieOf(back), 'after-login', { type: 'create', item: { title: 'Yes' } })).status, 200)
  t.same(await listDir(farm.data), [HOST], 'b.example was never written to')
})

t.test('concurrent writers to one page: every action lands, in some order, none lost', async (t) => {
  const farm = await startFarm(t, { farm: false })
  const port = await listenLocal(farm)
  const login = await http(port, 'POST', '/login', 'localhost')
  const cookie = cookieOf(login)
  const put = (slug: string, action: unknown) => http(port, 'PUT', `/page/${slug}/action`, 'localhost',
    { headers: { cookie, 'content-type': FORM }, body: `action=${encodeURIComponent(JSON.stringify(action))}` })
  t.equal((await put('busy', { type: 'create', item: { title: 'Busy' }, date: 1 })).status, 200)
  const n = 25
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      put('busy', { type: 'add', id: itemId(i + 1), item: para(i + 1, `w${i}`), date: 2 + i }),
    ),
  )
  t.same(results.map((r) => r.status), Array(n).fill(200))
  const page = JSON.parse((await http(port, 'GET', '/busy.json', 'localhost')).body) as Page
  t.equal(page.story.length, n)
  t.same(page.story.map((item) => item.id).sort(), Array.from({ length: n }, (_, i) => itemId(i + 1)).sort())
  t.equal(page.journal?.length, n + 1)
  t.same(JSON.parse(await readFile(join(farm.data, 'pages', 'busy'), 'utf8')), page)
  t.same((await listDir(join(farm.data, 'pages'))), ['busy'], 'no temp files left behind')
})
