// A data folder laid out by the reference wiki farm (wiki 0.40, wiki-server 0.27,
// wiki-security-friends) is served as it is: pages, owner, sitemap, flag, recycler; an edit
// rewrites one page (and the sitemap) in the same format and touches nothing else.
import t, { type Test } from 'tap'
import { readFile, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Page } from '../schemas/page.js'
import { drawFlag } from '../core/client/favicon.js'
import { sitemapEntry } from '../core/pages/sitemap.js'
import {
  itemId,
  listDir,
  putAction,
  sessionCookie,
  snapshot,
  startFarm,
  testData,
  type TestFarm,
} from './fixtures/test-farm.js'

const HOST = 'wiki.example.org'
const SECRET = '9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c0e2b4d6f8a1c3e5b7d9f0a2c4e6b8d0f'
// As the reference writes pages: JSON.stringify(page, null, 2), no trailing newline.
const pretty = (value: unknown) => JSON.stringify(value, null, 2)

const welcome: Page = {
  title: 'Welcome Visitors',
  story: [
    { type: 'paragraph', id: '7b56f22a4b9ee974', text: 'Welcome to this [[Federated Wiki]] site.' },
    { type: 'paragraph', id: 'ee416d431ebf4fb4', text: 'See [[How To Wiki]] or [[Recent Changes]].' },
    {
      type: 'reference',
      id: '3a1f4c2d5e6b7a89',
      site: 'fed.wiki.org',
      slug: 'federated-wiki',
      title: 'Federated Wiki',
      text: 'The idea.',
    },
  ],
  journal: [
    { type: 'create', item: { title: 'Welcome Visitors', story: [] }, date: 1420070400000 },
    { type: 'fork', site: 'fed.wiki.org', date: 1488473254245 },
    {
      type: 'edit',
      id: '7b56f22a4b9ee974',
      item: { type: 'paragraph', id: '7b56f22a4b9ee974', text: 'Welcome to this [[Federated Wiki]] site.' },
      date: 1700000000010,
    },
  ],
}
const howTo: Page = {
  title: 'How To Wiki',
  story: [
    { type: 'markdown', id: 'a1b2c3d4e5f60718', text: '# Editing\nDouble-click to edit.' },
    { type: 'factory', id: 'legacy-id-1' },
  ],
  journal: [{ type: 'create', item: { title: 'How To Wiki', story: [] }, date: 1500000000000 }],
}
const recycled: Page = {
  title: 'Old Page',
  story: [],
  journal: [{ type: 'create', item: { title: 'Old Page' }, date: 5 }],
}
const ownerJson = JSON.stringify({ name: 'fovisu', friend: { secret: SECRET } }, null, '  ')
// The reference's compact sitemap, built with its own rules (which ours follow).
const sitemapJson = JSON.stringify([sitemapEntry('welcome-visitors', welcome), sitemapEntry('how-to-wiki', howTo)])
const flag = drawFlag('a flag the owner uploaded')

function referenceSite(): Record<string, unknown> {
  return {
    pages: {
      'welcome-visitors': pretty(welcome),
      'how-to-wiki': pretty(howTo),
      UPPER: pretty({ title: 'Upper', story: [] }),
    },
    status: {
      'owner.json': ownerJson,
      'sitemap.json': sitemapJson,
      'sitemap.xml':
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"/>',
      'site-index.json':
        '{"documentCount":0,"nextId":0,"documentIds":{},"fieldIds":{"title":0,"content":1},"fieldLength":{},' +
        '"averageFieldLength":[],"storedFields":{},"dirtCount":0,"index":[],"serializationVersion":2}',
      'index-updated': '',
      'favicon.png': flag,
      theme: { 'style.css': 'body { color: black }' },
    },
    recycle: { 'old-page': pretty(recycled) },
    assets: { uploads: { 'photo.jpg': Buffer.from([0xff, 0xd8, 0xff]) }, plugins: { image: {} } },
  }
}

/** A reference farm folder; the sitemap saved after the pages, as the reference does. */
async function referenceFarm(t: Test, single = false): Promise<{ data: string; site: string }> {
  const data = single ? testData(t, referenceSite() as Parameters<typeof testData>[1])
    : testData(t, { [HOST]: referenceSite(), commons: { uploads: {} } } as Parameters<typeof testData>[1])
  const site = single ? data : join(data, HOST)
  const later = new Date(Date.now() + 1000)
  await utimes(join(site, 'status', 'sitemap.json'), later, later)
  return { data, site }
}

async function reclaim(farm: TestFarm, host: string): Promise<string> {
  const response = await farm.app.inject({
    method: 'POST',
    url: '/auth/reclaim/',
    headers: { host, 'content-type': 'text/plain;charset=UTF-8' },
    payload: SECRET,
  })
  if (response.statusCode !== 200) throw new Error(`reclaim: ${response.statusCode} ${response.body}`)
  return sessionCookie(response) ?? ''
}

for (const single of [false, true]) {
  t.test(`${single ? 'single site' : 'farm'}: served unchanged`, async (t) => {
    const { data, site } = await referenceFarm(t, single)
    const farm = await startFarm(t, single ? { farm: false } : { farm: true, allowed: ['*'] }, data)
    const host = single ? 'localhost:3000' : HOST
    const before = await snapshot(data)
    const get = (url: string, cookie?: string) =>
      farm.app.inject({ url, headers: cookie ? { host, cookie } : { host } })

    t.same((await get('/welcome-visitors.json')).json(), welcome, 'the stored page, not our default')
    t.same((await get('/how-to-wiki.json')).json(), howTo, 'legacy item ids are served as they are')
    t.equal((await get('/about-this-wiki.json')).statusCode, 200, 'defaults fill in what the site lacks')
    t.same(
      (await get('/system/slugs.json')).json(),
      ['how-to-wiki', 'welcome-visitors'],
      'files that are not slugs are skipped',
    )
    t.same((await get('/system/sitemap.json')).json(), JSON.parse(sitemapJson), 'the stored sitemap')
    t.same(Object.keys((await get('/system/export.json')).json()).sort(), ['how-to-wiki', 'welcome-visitors'])
    t.same((await get('/favicon.png')).rawPayload, flag, "the owner's flag")
    const html = await get('/welcome-visitors.html')
    t.match(html.body, 'Welcome to this <a class="internal" href="/federated-wiki.html">Federated Wiki</a> site.')

    const login = await farm.app.inject({ method: 'POST', url: '/login', headers: { host } })
    t.equal(login.statusCode, 501, 'owner.json says the site is claimed')
    t.equal(login.json().ownerName, 'fovisu')
    t.equal((await putAction(farm.app, host, null, 'x', { type: 'create', item: { title: 'X' } })).statusCode, 403)
    const cookie = await reclaim(farm, host)
    t.same((await get('/recycler/system/slugs.json', cookie)).json(), [{ slug: 'old-page', title: 'Old Page' }])
    t.same((await get('/recycler/old-page.json', cookie)).json(), recycled)

    await farm.kernel.close()
    t.same(await snapshot(data), before, 'reading (and logging in) changed no file')
    t.same(await listDir(site), ['assets', 'pages', 'recycle', 'status'])
  })
}

t.test('an edit keeps the layout: one page rewritten pretty, the sitemap updated, nothing else touched', async (t) => {
  const { data, site } = await referenceFarm(t)
  const farm = await startFarm(t, { farm: true, allowed: ['*'] }, data)
  const cookie = await reclaim(farm, HOST)
  const before = await snapshot(data)
  const edit = {
    type: 'edit',
    id: 'ee416d431ebf4fb4',
    item: { type: 'paragraph', id: 'ee416d431ebf4fb4', text: 'Edited by wikifarm.' },
    date: 1800000000000,
  }
  t.equal((await putAction(farm.app, HOST, cookie, 'welcome-visitors', edit)).statusCode, 200)
  const add = {
    type: 'add',
    id: itemId(1),
    item: { type: 'paragraph', id: itemId(1), text: 'New page.' },
    date: 1800000000001,
  }
  t.equal(
    (
      await putAction(farm.app, HOST, cookie, 'new-page', {
        type: 'create',
        item: { title: 'New Page' },
        date: 1800000000000,
      })
    ).statusCode,
    200,
  )
  t.equal((await putAction(farm.app, HOST, cookie, 'new-page', add)).statusCode, 200)
  await farm.kernel.close()

  const after = await snapshot(data)
  const changed = Object.keys(after).filter((path) => after[path] !== before[path]).sort()
  t.same(changed, [
    `${HOST}/pages/new-page`, `${HOST}/pages/welcome-visitors`, `${HOST}/status/sitemap.json`,
  ], 'only the written pages and the sitemap changed; no temp files or new folders left')
  t.same(Object.keys(before).filter((path) => !(path in after)), [], 'nothing was removed')

  const text = await readFile(join(site, 'pages', 'welcome-visitors'), 'utf8')
  const page = JSON.parse(text) as Page
  t.equal(text, pretty(page), 'pretty JSON without a trailing newline, like the reference')
  t.same(page.story[1], edit.item)
  t.same(page.journal, [...(welcome.journal ?? []), edit])
  const sitemap = JSON.parse(await readFile(join(site, 'status', 'sitemap.json'), 'utf8')) as Array<{
    slug: string
    date?: number
  }>
  t.same(
    sitemap.map((e) => e.slug),
    ['welcome-visitors', 'how-to-wiki', 'new-page'],
    'entries keep their order, new ones appended',
  )
  t.same(sitemap[0], sitemapEntry('welcome-visitors', page))
  t.same(sitemap[1], JSON.parse(sitemapJson)[1], 'the other entries are as they were')
})

t.test('a sitemap older than the pages (a page added by hand) is rebuilt on open', async (t) => {
  const { data, site } = await referenceFarm(t)
  const added: Page = { title: 'By Hand', story: [{ type: 'paragraph', id: itemId(5), text: 'Copied in with scp.' }] }
  await writeFile(join(site, 'pages', 'by-hand'), pretty(added))
  const old = new Date(Date.now() - 60_000)
  await utimes(join(site, 'status', 'sitemap.json'), old, old)
  const farm = await startFarm(t, { farm: true, allowed: ['*'] }, data)
  const served = (await farm.app.inject({ url: '/system/sitemap.json', headers: { host: HOST } })).json() as Array<{
    slug: string
  }>
  t.same(served.map((e) => e.slug).sort(), ['by-hand', 'how-to-wiki', 'welcome-visitors'])
  t.same(
    served.find((e) => e.slug === 'by-hand'),
    { slug: 'by-hand', title: 'By Hand', synopsis: 'Copied in with scp.' },
  )
  await farm.kernel.close()
  const saved = JSON.parse(await readFile(join(site, 'status', 'sitemap.json'), 'utf8')) as unknown[]
  t.same(saved, served, 'and saved')
})
