// Every page route of the reference wiki-server, in single-site and in farm mode: reads,
// the /system routes, sitemaps, favicon, actions (form field and JSON body), delete into the
// recycler and the recycler's routes, the HTML entry points and CORS on reads.
import t from 'tap'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { drawFlag } from '../core/client/favicon.js'
import {
  claim,
  FORM,
  itemId,
  listDir,
  putAction,
  readJson,
  snapshot,
  startFarm,
  testData,
} from './fixtures/test-farm.js'

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

const modes = [
  { name: 'single-site', farm: false, host: 'localhost:3000', folder: (data: string) => data },
  { name: 'farm', farm: true, host: 'a.example', folder: (data: string) => join(data, 'a.example') },
]

for (const mode of modes) {
  t.test(`${mode.name}: reads on a new site`, async (t) => {
    const { app, data } = await startFarm(t, { farm: mode.farm })
    const host = mode.host
    const get = (url: string) => app.inject({ url, headers: { host } })

    const welcome = await get('/welcome-visitors.json')
    t.equal(welcome.statusCode, 200)
    t.equal(welcome.headers['content-type'], 'application/json; charset=utf-8')
    t.equal(welcome.headers['access-control-allow-origin'], '*', 'reads are open to other sites')
    t.equal(welcome.json().title, 'Welcome Visitors', 'the default page')
    t.ok(Array.isArray(welcome.json().story) && welcome.json().story.length > 0)
    t.equal((await get('/about-this-wiki.json')).json().title, 'About This Wiki')
    t.equal((await get('/welcome-visitors.json?random=1')).statusCode, 200, 'query strings are ignored')

    const missing = await get('/missing-page.json')
    t.equal(missing.statusCode, 404)
    t.same(missing.json(), { error: 'Page not found: missing-page', code: 'WIKIFARM_ERR_PAGE_NOT_FOUND' })
    t.equal(missing.headers['access-control-allow-origin'], '*')

    for (const [url, body] of [
      ['/system/slugs.json', []],
      ['/system/sitemap.json', []],
      ['/system/export.json', {}],
    ] as const) {
      const response = await get(url)
      t.equal(response.statusCode, 200, url)
      t.equal(response.headers['content-type'], 'application/json; charset=utf-8', url)
      t.equal(response.headers['access-control-allow-origin'], '*', url)
      t.same(response.json(), body, `${url}: default pages are not listed`)
    }
    const xml = await get('/sitemap.xml')
    t.equal(xml.statusCode, 200)
    t.match(xml.headers['content-type'], /^application\/xml/)
    t.equal(
      xml.body,
      '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n</urlset>\n',
    )

    for (const url of ['/system/plugins.json', '/system/factories.json']) {
      const response = await get(url)
      t.equal(response.statusCode, 200, url)
      t.equal(response.headers['content-type'], 'application/json; charset=utf-8', url)
      const list = response.json() as Array<string | { name: string }>
      t.ok(
        list.some((entry) => (typeof entry === 'string' ? entry : entry.name).toLowerCase() === 'markdown'),
        `${url}: lists the installed client plugins`,
      )
    }

    const flag = await get('/favicon.png')
    t.equal(flag.statusCode, 200)
    t.equal(flag.headers['content-type'], 'image/png')
    t.same(flag.rawPayload.subarray(0, 8), PNG_SIGNATURE)
    t.same(flag.rawPayload, drawFlag(mode.farm ? 'a.example' : 'default'), 'the drawn flag of this site')

    const root = await get('/')
    t.equal(root.statusCode, 302)
    t.equal(root.headers.location, 'welcome-visitors.html')
    const html = await get('/welcome-visitors.html')
    t.equal(html.statusCode, 200)
    t.match(html.headers['content-type'], /^text\/html/)
    t.match(html.body, /<title>Welcome Visitors<\/title>/)
    t.match(
      html.body,
      /<a class="internal" href="\/about-this-wiki.html">About This Wiki<\/a>/,
      'story items are rendered, links too',
    )
    const missingHtml = await get('/missing-page.html')
    t.equal(missingHtml.statusCode, 404)
    t.equal(missingHtml.json().code, 'WIKIFARM_ERR_PAGE_NOT_FOUND')

    const version = await get('/system/version.json')
    t.equal(version.statusCode, 403, 'version is for the farm administrator')
    t.equal(version.json().code, 'WIKIFARM_ERR_NOT_ADMIN')

    t.same(await snapshot(data), {}, 'reading creates nothing on disk')
  })

  t.test(`${mode.name}: writes, delete into the recycler, and the recycler`, async (t) => {
    const { app, data } = await startFarm(t, { farm: mode.farm })
    const host = mode.host
    const folder = mode.folder(data)
    const owner = await claim(t, app, host)
    const get = (url: string, cookie?: string) => app.inject({ url, headers: cookie ? { host, cookie } : { host } })

    // The reference client's form field `action`.
    const create = await putAction(app, host, owner.cookie, 'first-page', {
      type: 'create',
      id: itemId(100),
      item: { title: 'First Page', story: [{ type: 'paragraph', id: itemId(1), text: 'Hello [[Second Page]]' }] },
      date: 1000,
    })
    t.equal(create.statusCode, 200)
    t.equal(create.headers['content-type'], 'text/plain; charset=utf-8')
    t.equal(create.body, 'ok')
    t.equal(create.headers['access-control-allow-origin'], undefined, 'writes do not invite cross-origin callers')
    // A JSON body holding the action as a JSON string, and one holding the object.
    const asString = await app.inject({
      method: 'PUT',
      url: '/page/second-page/action',
      headers: { host, cookie: owner.cookie, 'content-type': 'application/json' },
      payload: JSON.stringify({
        action: JSON.stringify({ type: 'create', item: { title: 'Second Page', story: [] }, date: 2000 }),
      }),
    })
    t.equal(asString.statusCode, 200, 'JSON body {action: "<json>"}')
    const asObject = await app.inject({
      method: 'PUT',
      url: '/page/second-page/action',
      headers: { host, cookie: owner.cookie, 'content-type': 'application/json' },
      payload: {
        action: {
          type: 'add',
          id: itemId(2),
          item: { type: 'paragraph', id: itemId(2), text: 'Second words' },
          date: 3000,
        },
      },
    })
    t.equal(asObject.statusCode, 200, 'JSON body {action: {...}}')

    t.same(await listDir(join(folder, 'pages')), ['first-page', 'second-page'], 'pages/<slug>, no extension')
    const onDisk = await readFile(join(folder, 'pages', 'first-page'), 'utf8')
    t.equal(onDisk, JSON.stringify(JSON.parse(onDisk), null, 2), 'pretty JSON, as the reference writes it')
    t.same((await get('/first-page.json')).json(), JSON.parse(onDisk), 'served as stored')
    t.same((await get('/second-page.json')).json().story, [{ type: 'paragraph', id: itemId(2), text: 'Second words' }])

    t.same((await get('/system/slugs.json')).json(), ['first-page', 'second-page'])
    t.same((await get('/system/sitemap.json')).json(), [
      {
        slug: 'first-page',
        title: 'First Page',
        synopsis: 'Hello [[Second Page]]',
        date: 1000,
        links: { 'second-page': itemId(1) },
      },
      { slug: 'second-page', title: 'Second Page', synopsis: 'Second words', date: 3000 },
    ])
    const xml = (await get('/sitemap.xml')).body
    t.match(xml, `<url><loc>http://${host}/first-page.html</loc><lastmod>1970-01-01</lastmod></url>`)
    t.match(xml, `<url><loc>http://${host}/second-page.html</loc><lastmod>1970-01-01</lastmod></url>`)
    const exported = (await get('/system/export.json')).json()
    t.same(Object.keys(exported).sort(), ['first-page', 'second-page'])
    t.same(exported['first-page'], JSON.parse(onDisk))
    const html = await get('/first-page.html')
    t.match(html.body, '<a class="internal" href="/second-page.html">Second Page</a>')

    // Delete moves the page into the recycler.
    const anonDelete = await app.inject({ method: 'DELETE', url: '/first-page.json', headers: { host } })
    t.equal(anonDelete.statusCode, 403, 'only the owner deletes')
    t.equal(anonDelete.json().code, 'WIKIFARM_ERR_NOT_OWNER')
    const deleted = await app.inject({
      method: 'DELETE',
      url: '/first-page.json',
      headers: { host, cookie: owner.cookie },
    })
    t.equal(deleted.statusCode, 200)
    t.equal(deleted.body, '')
    t.same(await listDir(join(folder, 'pages')), ['second-page'])
    t.same(await listDir(join(folder, 'recycle')), ['first-page'])
    t.equal(await readFile(join(folder, 'recycle', 'first-page'), 'utf8'), onDisk, 'moved as it was')
    t.equal((await get('/first-page.json')).statusCode, 404)
    t.same((await get('/system/slugs.json')).json(), ['second-page'])
    t.same((await get('/system/sitemap.json')).json().map((e: { slug: string }) => e.slug), ['second-page'])
    t.same(Object.keys((await get('/system/export.json')).json()), ['second-page'])
    const again = await app.inject({
      method: 'DELETE',
      url: '/first-page.json',
      headers: { host, cookie: owner.cookie },
    })
    t.equal(again.statusCode, 404)
    t.equal(again.json().code, 'WIKIFARM_ERR_PAGE_NOT_FOUND')
    const defaultPage = await app.inject({
      method: 'DELETE',
      url: '/welcome-visitors.json',
      headers: { host, cookie: owner.cookie },
    })
    t.equal(defaultPage.statusCode, 404, 'a default page is not stored, so there is nothing to delete')

    // The recycler is the owner's.
    for (const url of ['/recycler/system/slugs.json', '/recycler/first-page.json']) {
      const anon = await get(url)
      t.equal(anon.statusCode, 403, `${url} anonymous`)
      t.equal(anon.json().code, 'WIKIFARM_ERR_NOT_OWNER')
      t.equal(anon.json().error, 'Only the owner of this wiki may see its recycler', 'a read is refused as a read')
    }
    const recycled = await get('/recycler/system/slugs.json', owner.cookie)
    t.equal(recycled.statusCode, 200)
    t.same(recycled.json(), [{ slug: 'first-page', title: 'First Page' }])
    const page = await get('/recycler/first-page.json', owner.cookie)
    t.equal(page.statusCode, 200)
    t.same(page.json(), JSON.parse(onDisk))
    t.equal((await get('/recycler/nothing-here.json', owner.cookie)).statusCode, 404)
    const anonRemove = await app.inject({ method: 'DELETE', url: '/recycler/first-page.json', headers: { host } })
    t.equal(anonRemove.statusCode, 403)
    t.same(await listDir(join(folder, 'recycle')), ['first-page'])
    const removed = await app.inject({
      method: 'DELETE',
      url: '/recycler/first-page.json',
      headers: { host, cookie: owner.cookie },
    })
    t.equal(removed.statusCode, 200)
    t.equal(removed.body, '')
    t.same(await listDir(join(folder, 'recycle')), [])
    t.same((await get('/recycler/system/slugs.json', owner.cookie)).json(), [])
    const removedAgain = await app.inject({
      method: 'DELETE',
      url: '/recycler/first-page.json',
      headers: { host, cookie: owner.cookie },
    })
    t.equal(removedAgain.statusCode, 404, 'a missing recycled page answers (the reference hangs)')
    t.equal((await get('/second-page.json')).statusCode, 200, 'and the site still answers afterwards')
  })

  t.test(`${mode.name}: favicon`, async (t) => {
    const { app, data } = await startFarm(t, { farm: mode.farm })
    const host = mode.host
    const folder = mode.folder(data)
    const owner = await claim(t, app, host)
    const png = drawFlag('something else')
    const post = (payload: unknown, cookie: string | null, type = 'application/json') =>
      app.inject({
        method: 'POST',
        url: '/favicon.png',
        headers: cookie ? { host, cookie, 'content-type': type } : { host, 'content-type': type },
        payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
      })

    const anon = await post({ image: `data:image/png;base64,${png.toString('base64')}` }, null)
    t.equal(anon.statusCode, 403)
    t.equal(await readFile(join(folder, 'status', 'favicon.png')).catch(() => null), null)

    const saved = await post({ image: `data:image/png;base64,${png.toString('base64')}` }, owner.cookie)
    t.equal(saved.statusCode, 200)
    t.equal(saved.body, 'Favicon Saved')
    t.same(await readFile(join(folder, 'status', 'favicon.png')), png, 'status/favicon.png')
    const served = await app.inject({ url: '/favicon.png', headers: { host } })
    t.equal(served.headers['content-type'], 'image/png')
    t.same(served.rawPayload, png)

    const other = drawFlag('a third flag')
    const form = await post(`image=${encodeURIComponent(other.toString('base64'))}`, owner.cookie, FORM)
    t.equal(form.statusCode, 200, 'a form field with bare base64 works too, and overwrites')
    t.same(await readFile(join(folder, 'status', 'favicon.png')), other)

    for (const image of [
      'data:image/png;base64,aGVsbG8=',
      'data:image/gif;base64,R0lGODlhAQABAAAAACw=',
      'not base64 at all!',
      42,
      '',
    ]) {
      const bad = await post({ image }, owner.cookie)
      t.equal(bad.statusCode, 400, `not a PNG: ${JSON.stringify(image)}`)
      t.equal(bad.json().code, 'WIKIFARM_ERR_VALIDATION')
    }
    const none = await post({}, owner.cookie)
    t.equal(none.statusCode, 400, 'missing image')
    t.same(await readFile(join(folder, 'status', 'favicon.png')), other, 'bad uploads change nothing')
  })
}

t.test('farm: each site has its own pages, sitemap, flag and recycler', async (t) => {
  const { app, data } = await startFarm(t, { farm: true })
  const a = await claim(t, app, 'a.example')
  const b = await claim(t, app, 'b.example')
  t.equal(
    (await putAction(app, 'a.example', a.cookie, 'only-on-a', { type: 'create', item: { title: 'A' }, date: 1 }))
      .statusCode,
    200,
  )
  t.equal(
    (await putAction(app, 'b.example', b.cookie, 'only-on-b', { type: 'create', item: { title: 'B' }, date: 2 }))
      .statusCode,
    200,
  )
  const slugs = async (host: string) => (await app.inject({ url: '/system/slugs.json', headers: { host } })).json()
  t.same(await slugs('a.example'), ['only-on-a'])
  t.same(await slugs('b.example'), ['only-on-b'])
  t.same((await app.inject({ url: '/system/sitemap.json', headers: { host: 'b.example' } })).json(),
    [{ slug: 'only-on-b', title: 'B', synopsis: 'A page with 0 items.', date: 2 }])
  const flagA = (await app.inject({ url: '/favicon.png', headers: { host: 'a.example' } })).rawPayload
  const flagB = (await app.inject({ url: '/favicon.png', headers: { host: 'b.example' } })).rawPayload
  t.notSame(flagA, flagB, 'sites are told apart by their flags')
  await app.inject({ method: 'DELETE', url: '/only-on-a.json', headers: { host: 'a.example', cookie: a.cookie } })
  t.same(
    (await app.inject({ url: '/recycler/system/slugs.json', headers: { host: 'b.example', cookie: b.cookie } })).json(),
    [],
  )
  t.same(await listDir(join(data, 'a.example', 'recycle')), ['only-on-a'])
  t.same(await listDir(data), ['a.example', 'b.example'])
})

t.test('HTML escapes what pages say', async (t) => {
  const { app } = await startFarm(t, { farm: false, security_legacy: true })
  const host = 'localhost'
  await putAction(app, host, null, 'evil', {
    type: 'create',
    item: {
      title: '<script>alert(1)</script>',
      story: [{ type: 'paragraph', id: itemId(1), text: '<img src=x onerror=alert(1)>' }],
    },
  })
  const html = await app.inject({ url: '/evil.html', headers: { host } })
  t.equal(html.statusCode, 200)
  t.notMatch(html.body, '<script>alert(1)</script>')
  t.notMatch(html.body, '<img src=x')
  t.match(html.body, '&#60;script&#62;alert(1)&#60;/script&#62;')
})

t.test('sitemap.xml: lastmod only for valid dates, and a bad date breaks nothing', async (t) => {
  const { app } = await startFarm(t, { farm: false, security_legacy: true })
  const host = 'localhost'
  t.equal(
    (await putAction(app, host, null, 'far-future', { type: 'create', item: { title: 'Far' }, date: 1e20 })).statusCode,
    200,
  )
  t.equal((await putAction(app, host, null, 'undated', { type: 'create', item: { title: 'Undated' } })).statusCode, 200)
  t.equal(
    (
      await putAction(app, host, null, 'dated', {
        type: 'create',
        item: { title: 'Dated' },
        date: Date.UTC(2024, 1, 29, 12),
      })
    ).statusCode,
    200,
  )
  const xml = await app.inject({ url: '/sitemap.xml', headers: { host } })
  t.equal(xml.statusCode, 200)
  t.match(xml.body, '<url><loc>http://localhost/far-future.html</loc></url>')
  t.match(xml.body, '<url><loc>http://localhost/dated.html</loc><lastmod>2024-02-29</lastmod></url>')
  t.match(
    xml.body,
    /<url><loc>http:\/\/localhost\/undated.html<\/loc><lastmod>\d{4}-\d\d-\d\d<\/lastmod><\/url>/,
    'dated by the server',
  )
})

t.test('HEAD is served by the GET routes', async (t) => {
  const { app } = await startFarm(t, { farm: false })
  const head = await app.inject({ method: 'HEAD', url: '/welcome-visitors.json', headers: { host: 'localhost' } })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
  t.equal(head.headers['content-type'], 'application/json; charset=utf-8')
})

t.test('a page that is not JSON is a 500 with a code, and the others still read', async (t) => {
  const data = testData(t, { pages: { broken: '{ not json', fine: JSON.stringify({ title: 'Fine', story: [] }) } })
  const { app } = await startFarm(t, { farm: false }, data)
  const broken = await app.inject({ url: '/broken.json', headers: { host: 'localhost' } })
  t.equal(broken.statusCode, 500)
  t.equal(broken.json().code, 'WIKIFARM_ERR_STORE')
  t.equal((await app.inject({ url: '/fine.json', headers: { host: 'localhost' } })).statusCode, 200)
  t.same(
    (await app.inject({ url: '/system/sitemap.json', headers: { host: 'localhost' } }))
      .json()
      .map((e: { slug: string }) => e.slug),
    ['fine'],
  )
  t.same(Object.keys((await app.inject({ url: '/system/export.json', headers: { host: 'localhost' } })).json()), [
    'fine',
  ])
  t.equal(await readFile(join(data, 'pages', 'broken'), 'utf8'), '{ not json', 'the broken file is left for its owner')
  // The recycler lists the pages it can read and skips the rest.
  const owner = await claim(t, app, 'localhost')
  await mkdir(join(data, 'recycle'), { recursive: true })
  await writeFile(join(data, 'recycle', 'junk'), 'junk')
  await writeFile(join(data, 'recycle', 'kept'), JSON.stringify({ title: 'Kept', story: [] }))
  const recycled = await app.inject({
    url: '/recycler/system/slugs.json',
    headers: { host: 'localhost', cookie: owner.cookie },
  })
  t.same(recycled.json(), [{ slug: 'kept', title: 'Kept' }])
  t.same(await readJson(join(data, 'pages', 'fine')), { title: 'Fine', story: [] })
})
