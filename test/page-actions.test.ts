// Every journal action through PUT /page/:slug/action: create, add, edit, remove, move, fork
// (pushed with forkPage, pulled from a remote site) and the implicit fork of an action that
// carries `fork`; the exact journal entries, and the sitemap kept up to date after each write.
import t, { type Test } from 'tap'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { Page } from '../schemas/page.js'
import type { FarmEvents } from '../core/pages/events.js'
import { synopsis, sitemapEntry } from '../core/pages/sitemap.js'
import {
  claim,
  itemId,
  listDir,
  listenLocal,
  putAction,
  readJson,
  snapshot,
  startFarm,
  storeFailingStatus,
  testData,
  type TestFarm,
} from './fixtures/test-farm.js'

const HOST = 'a.example'

interface Site extends TestFarm {
  cookie: string
  folder: string
  act(slug: string, action: unknown): Promise<{ status: number; code?: string }>
  page(slug: string): Promise<Page>
  stored(slug: string): Promise<unknown>
  sitemap(): Promise<unknown[]>
  sitemapFile(): Promise<unknown>
}

async function ownedSite(t: Test, data?: string): Promise<Site> {
  const farm = await startFarm(t, { farm: true }, data)
  const owner = await claim(t, farm.app, HOST)
  const folder = join(farm.data, HOST)
  return {
    ...farm, cookie: owner.cookie, folder,
    async act(slug, action) {
      const response = await putAction(farm.app, HOST, owner.cookie, slug, action)
      return response.statusCode === 200 ? { status: 200 } : { status: response.statusCode, code: response.json().code }
    },
    async page(slug) {
      const response = await farm.app.inject({ url: `/${slug}.json`, headers: { host: HOST } })
      return response.json() as Page
    },
    stored: (slug) => readJson(join(folder, 'pages', slug)),
    async sitemap() {
      return (await farm.app.inject({ url: '/system/sitemap.json', headers: { host: HOST } })).json() as unknown[]
    },
    async sitemapFile() {
      await farm.kernel.sites.open(HOST).flush()
      return readJson(join(folder, 'status', 'sitemap.json'))
    },
  }
}

const para = (n: number, text: string) => ({ type: 'paragraph', id: itemId(n), text })

t.test('create: the page is the item, its journal the action; 409 if the page exists', async (t) => {
  const site = await ownedSite(t)
  const action = { type: 'create', id: itemId(99), item: { title: 'X', story: [para(1, 'one')] }, date: 1700000000000 }
  t.same(await site.act('x', action), { status: 200 })
  t.strictSame(await site.stored('x'), { title: 'X', story: [para(1, 'one')], journal: [action] })
  t.strictSame(await site.page('x'), await site.stored('x'), 'served as stored')

  t.same(await site.act('no-story', { type: 'create', item: { title: 'No Story' }, date: 5 }), { status: 200 })
  t.strictSame(await site.stored('no-story'), {
    title: 'No Story',
    story: [],
    journal: [{ type: 'create', item: { title: 'No Story' }, date: 5 }],
  })

  // An item that carries its own journal (a page imported whole) keeps it, the create appended.
  const imported = {
    type: 'create',
    item: { title: 'Imported', story: [], journal: [{ type: 'create', item: { title: 'Imported' }, date: 1 }] },
    date: 9,
  }
  t.same(await site.act('imported', imported), { status: 200 })
  t.strictSame((await site.stored('imported') as Page).journal, [
    { type: 'create', item: { title: 'Imported' }, date: 1 },
    { type: 'create', item: imported.item, date: 9 },
  ])

  // Plugins nest their data; a few dozen levels are fine.
  let nested: unknown = 'leaf'
  for (let i = 0; i < 40; i++) nested = i % 2 ? [nested] : { inner: nested }
  t.same(
    await site.act('nested', {
      type: 'create',
      item: { title: 'Nested', story: [{ type: 'data', id: itemId(1), data: nested }] },
      date: 3,
    }),
    { status: 200 },
  )
  t.same((await site.page('nested')).story[0]?.data, nested)

  await site.kernel.sites.open(HOST).flush()
  const before = await snapshot(site.data)
  t.same(await site.act('x', { type: 'create', item: { title: 'Again' }, date: 2 }), {
    status: 409,
    code: 'WIKIFARM_ERR_PAGE_EXISTS',
  })
  t.same(await site.act('welcome-visitors', { type: 'create', item: { title: 'Mine' }, date: 2 }),
    { status: 409, code: 'WIKIFARM_ERR_PAGE_EXISTS' }, 'a default page exists too')
  t.same(await site.act('about-this-wiki', { type: 'create', item: { title: 'Mine' }, date: 2 }), {
    status: 409,
    code: 'WIKIFARM_ERR_PAGE_EXISTS',
  })
  await site.kernel.sites.open(HOST).flush()
  t.same(await snapshot(site.data), before, 'a refused create writes nothing')
  t.equal((await site.page('welcome-visitors')).title, 'Welcome Visitors')
})

t.test('add: after the named item, at the top without `after` or when it is unknown', async (t) => {
  const site = await ownedSite(t)
  await site.act('x', { type: 'create', item: { title: 'X', story: [] }, date: 1 })
  const add1 = { type: 'add', id: itemId(1), item: para(1, 'first'), date: 2 }
  const add2 = { type: 'add', id: itemId(2), item: para(2, 'second'), after: itemId(1), date: 3 }
  const add3 = { type: 'add', id: itemId(3), item: para(3, 'third'), after: itemId(1), date: 4 }
  const add0 = { type: 'add', id: itemId(4), item: para(4, 'zeroth'), after: itemId(0xdead), date: 5 }
  const add5 = { type: 'add', id: itemId(5), item: para(5, 'top'), date: 6 }
  for (const action of [add1, add2, add3, add0, add5])
    t.same(await site.act('x', action), { status: 200 }, `add ${action.item.text}`)
  const page = await site.stored('x') as Page
  t.same(page.story.map((item) => item.text), ['top', 'zeroth', 'first', 'third', 'second'])
  t.strictSame(
    page.journal,
    [{ type: 'create', item: { title: 'X', story: [] }, date: 1 }, add1, add2, add3, add0, add5],
    'each add is journaled exactly as sent, `after` included',
  )
  t.same(await site.act('x', { type: 'add', id: itemId(1), item: para(1, 'dup'), date: 7 }),
    { status: 400, code: 'WIKIFARM_ERR_BAD_ACTION' }, 'an id already on the page')
  t.strictSame(await site.stored('x'), page, 'unchanged by the refused add')
})

t.test('edit and remove', async (t) => {
  const site = await ownedSite(t)
  await site.act('x', {
    type: 'create',
    item: { title: 'X', story: [para(1, 'one'), para(2, 'two'), para(3, 'three')] },
    date: 1,
  })
  const edit = {
    type: 'edit',
    id: itemId(2),
    item: { type: 'markdown', id: itemId(2), text: '*two*', extra: { kept: true } },
    date: 2,
  }
  t.same(await site.act('x', edit), { status: 200 })
  let page = await site.stored('x') as Page
  t.strictSame(page.story, [para(1, 'one'), edit.item, para(3, 'three')], 'the item is replaced whole, in place')
  t.strictSame(page.journal?.at(-1), edit)

  const remove = { type: 'remove', id: itemId(1), date: 3 }
  t.same(await site.act('x', remove), { status: 200 })
  page = await site.stored('x') as Page
  t.strictSame(page.story, [edit.item, para(3, 'three')])
  t.strictSame(page.journal?.at(-1), remove)
  t.equal(page.journal?.length, 3)
})

t.test('an action without a date is dated by the server', async (t) => {
  const site = await ownedSite(t)
  await site.act('x', { type: 'create', item: { title: 'X' } })
  const before = Date.now()
  t.same(await site.act('x', { type: 'add', id: itemId(1), item: para(1, 'undated') }), { status: 200 })
  const after = Date.now()
  const entry = (await site.stored('x') as Page).journal?.at(-1)
  t.equal(typeof entry?.date, 'number')
  t.ok(Number(entry?.date) >= before && Number(entry?.date) <= after, 'dated now')
  t.strictSame(entry, { type: 'add', id: itemId(1), item: para(1, 'undated'), date: entry?.date })
})

t.test('move: a permutation of the story, anything else refused', async (t) => {
  const site = await ownedSite(t)
  await site.act('x', {
    type: 'create',
    item: { title: 'X', story: [para(1, 'a'), para(2, 'b'), para(3, 'c')] },
    date: 1,
  })
  const move = { type: 'move', id: itemId(3), order: [itemId(3), itemId(1), itemId(2)], date: 2 }
  t.same(await site.act('x', move), { status: 200 })
  const page = await site.stored('x') as Page
  t.same(page.story.map((item) => item.text), ['c', 'a', 'b'])
  t.strictSame(page.journal?.at(-1), move)
  for (const [why, order] of [
    ['drops an item', [itemId(3), itemId(1)]],
    ['names an unknown item', [itemId(3), itemId(1), itemId(9)]],
    ['repeats an item', [itemId(3), itemId(1), itemId(1)]],
    ['adds an item', [itemId(3), itemId(1), itemId(2), itemId(9)]],
  ] as const) {
    t.same(
      await site.act('x', { type: 'move', id: itemId(3), order, date: 3 }),
      { status: 409, code: 'WIKIFARM_ERR_ITEM_NOT_FOUND' },
      why,
    )
  }
  t.same(await site.act('x', { type: 'move', id: itemId(9), order: [itemId(1), itemId(2), itemId(3)], date: 3 }),
    { status: 409, code: 'WIKIFARM_ERR_ITEM_NOT_FOUND' }, 'the moved item itself is unknown')
  t.strictSame(await site.stored('x'), page, 'no refused move changed the page')
})

t.test('editing a default page copies it into the site', async (t) => {
  const site = await ownedSite(t)
  const original = await site.page('welcome-visitors')
  const first = original.story[0]
  if (!first) throw new Error('the default page has a story')
  const edit = { type: 'edit', id: first.id, item: { ...first, text: 'Our own welcome.' }, date: 1800000000000 }
  t.same(await site.act('welcome-visitors', edit), { status: 200 })
  const stored = await site.stored('welcome-visitors') as Page
  t.equal(stored.title, 'Welcome Visitors')
  t.equal(stored.story[0]?.text, 'Our own welcome.')
  t.same(stored.story.slice(1), original.story.slice(1))
  t.strictSame(stored.journal, [...(original.journal ?? []), edit])
  t.same(await listDir(join(site.folder, 'pages')), ['welcome-visitors'])
  t.same((await site.sitemap()).map((e) => (e as { slug: string }).slug), ['welcome-visitors'], 'now listed')
})

t.test('fork with forkPage: the page pushed by the client, the old one backed up', async (t) => {
  const site = await ownedSite(t)
  const remote: Page = {
    title: 'Remote',
    story: [para(1, 'from afar')],
    journal: [
      { type: 'create', item: { title: 'Remote' }, date: 10 },
      { type: 'fork', site: 'third.example', date: 11 },
    ],
  }
  const fork = { type: 'fork', site: 'remote.example', forkPage: remote, date: 20 }
  t.same(await site.act('fresh', fork), { status: 200 })
  t.strictSame(
    await site.stored('fresh'),
    { ...remote, journal: [...(remote.journal ?? []), { type: 'fork', site: 'remote.example', date: 20 }] },
    'the journal gets the fork, without forkPage',
  )
  t.same(await listDir(join(site.folder, 'recycle')), [], 'nothing to back up for a new page')

  // Forking over a local page keeps the local page in the recycler.
  await site.act('local', { type: 'create', item: { title: 'Local', story: [para(2, 'mine')] }, date: 1 })
  const local = await readFile(join(site.folder, 'pages', 'local'), 'utf8')
  t.same(await site.act('local', { ...fork, date: 30 }), { status: 200 })
  t.equal((await site.stored('local') as Page).title, 'Remote')
  t.equal(await readFile(join(site.folder, 'recycle', 'local'), 'utf8'), local, 'the previous page is in recycle/')
  t.same((await site.sitemap()).find((e) => (e as { slug: string }).slug === 'local'),
    { slug: 'local', title: 'Remote', synopsis: 'from afar', date: 10 }, 'fork entries do not date a page')
})

t.test('an action carrying `fork`: fork entry first, then the action, on the pushed page', async (t) => {
  const site = await ownedSite(t)
  await site.act('x', { type: 'create', item: { title: 'Local X', story: [para(7, 'local')] }, date: 1 })
  const localJson = await readFile(join(site.folder, 'pages', 'x'), 'utf8')
  const forkPage: Page = {
    title: 'X remote',
    story: [para(1, 'remote text')],
    journal: [{ type: 'create', item: { title: 'X remote' }, date: 100 }],
  }
  const edit = {
    type: 'edit',
    id: itemId(1),
    item: para(1, 'implicit fork edit'),
    fork: 'elsewhere.example',
    forkPage,
    date: 1700000003000,
  }
  t.same(await site.act('x', edit), { status: 200 })
  t.strictSame(await site.stored('x'), {
    title: 'X remote',
    story: [para(1, 'implicit fork edit')],
    journal: [
      { type: 'create', item: { title: 'X remote' }, date: 100 },
      { type: 'fork', site: 'elsewhere.example', date: 1700000002999 },
      { type: 'edit', id: itemId(1), item: para(1, 'implicit fork edit'), date: 1700000003000 },
    ],
  })
  t.equal(await readFile(join(site.folder, 'recycle', 'x'), 'utf8'), localJson, 'the local page was backed up')
  t.same((await site.sitemap())[0], {
    slug: 'x',
    title: 'X remote',
    synopsis: 'implicit fork edit',
    date: 1700000003000,
  })

  // The same on a page this site never had: an add that forks.
  const add = {
    type: 'add',
    id: itemId(2),
    item: para(2, 'added'),
    after: itemId(1),
    fork: 'elsewhere.example',
    forkPage,
    date: 50,
  }
  t.same(await site.act('new-here', add), { status: 200 })
  const page = await site.stored('new-here') as Page
  t.same(page.story.map((item) => item.text), ['remote text', 'added'])
  t.strictSame(page.journal?.slice(-2), [
    { type: 'fork', site: 'elsewhere.example', date: 49 },
    { type: 'add', id: itemId(2), item: para(2, 'added'), after: itemId(1), date: 50 },
  ])
  t.same(await listDir(join(site.folder, 'recycle')), ['x'], 'nothing backed up for a page that did not exist')
})

t.test('fork pulling from a remote site over HTTP', async (t) => {
  const root = testData(t, { remote: {}, local: {} })
  const remote = await startFarm(t, { farm: false, security_legacy: true }, join(root, 'remote'))
  const remotePort = await listenLocal(remote)
  const remoteSite = `127.0.0.1:${remotePort}`
  const remoteJournal = [
    { type: 'create', item: { title: 'Shared', story: [] }, date: 5 },
    { type: 'add', id: itemId(1), item: para(1, 'remote words'), date: 6 },
  ]
  t.equal((await putAction(remote.app, 'localhost', null, 'shared', remoteJournal[0])).statusCode, 200)
  t.equal((await putAction(remote.app, 'localhost', null, 'shared', remoteJournal[1])).statusCode, 200)

  const site = await ownedSite(t, join(root, 'local'))
  t.same(await site.act('shared', { type: 'fork', site: remoteSite, date: 1700000001000 }), { status: 200 })
  t.strictSame(await site.stored('shared'), {
    title: 'Shared',
    story: [para(1, 'remote words')],
    journal: [...remoteJournal, { type: 'fork', site: remoteSite, date: 1700000001000 }],
  })

  // An edit that forks without sending the page pulls it too.
  const edit = { type: 'edit', id: itemId(1), item: para(1, 'edited here'), fork: remoteSite, date: 1700000005000 }
  t.same(await site.act('shared', edit), { status: 200 })
  const page = await site.stored('shared') as Page
  t.same(page.story, [para(1, 'edited here')])
  t.strictSame(
    page.journal,
    [
      ...remoteJournal,
      { type: 'fork', site: remoteSite, date: 1700000004999 },
      { type: 'edit', id: itemId(1), item: para(1, 'edited here'), date: 1700000005000 },
    ],
    'based on the remote page, not the local one',
  )
  t.ok((await listDir(join(site.folder, 'recycle'))).includes('shared'), 'the local page was backed up')

  await site.kernel.sites.open(HOST).flush()
  const before = await snapshot(site.data)
  t.same(
    await site.act('not-there', { type: 'fork', site: remoteSite, date: 1 }),
    { status: 404, code: 'WIKIFARM_ERR_PAGE_NOT_FOUND' },
    'the remote has no such page',
  )
  t.same(
    await site.act('shared', { type: 'fork', site: '127.0.0.1:1', date: 1 }),
    { status: 404, code: 'WIKIFARM_ERR_PAGE_NOT_FOUND' },
    'nobody listens there',
  )
  t.same(await site.act('shared', { type: 'fork', site: 'bad/site', date: 1 }), {
    status: 400,
    code: 'WIKIFARM_ERR_BAD_ACTION',
  })
  await site.kernel.sites.open(HOST).flush()
  t.same(await snapshot(site.data), before, 'failed forks change nothing')
})

t.test('the sitemap follows every write, in memory and in status/sitemap.json', async (t) => {
  const site = await ownedSite(t)
  const changed: Array<FarmEvents['page.changed']> = []
  site.kernel.events.on('page.changed', (event) => { changed.push(event) })
  const steps: Array<[string, unknown, unknown]> = [
    [
      'x',
      { type: 'create', item: { title: 'X', story: [] }, date: 1000 },
      { slug: 'x', title: 'X', date: 1000, synopsis: 'A page with 0 items.' },
    ],
    [
      'x',
      {
        type: 'add',
        id: itemId(1),
        item: { type: 'image', id: itemId(1), text: 'A caption\nsecond line' },
        date: 2000,
      },
      { slug: 'x', title: 'X', date: 2000, synopsis: 'A caption' },
    ],
    [
      'x',
      {
        type: 'add',
        id: itemId(2),
        item: para(2, 'Hello [[Other Page]] and [[Third one!]]'),
        after: itemId(1),
        date: 3000,
      },
      {
        slug: 'x',
        title: 'X',
        date: 3000,
        synopsis: 'Hello [[Other Page]] and [[Third one!]]',
        links: { 'other-page': itemId(2), 'third-one': itemId(2) },
      },
    ],
    [
      'x',
      {
        type: 'add',
        id: itemId(3),
        item: { type: 'reference', id: itemId(3), slug: 'referenced', site: 'b.example', text: 'see [[Other Page]]' },
        after: itemId(2),
        date: 4000,
      },
      {
        slug: 'x',
        title: 'X',
        date: 4000,
        synopsis: 'Hello [[Other Page]] and [[Third one!]]',
        links: { 'other-page': itemId(2), 'third-one': itemId(2), referenced: itemId(3) },
      },
    ],
    [
      'x',
      { type: 'remove', id: itemId(2), date: 5000 },
      {
        slug: 'x',
        title: 'X',
        date: 5000,
        synopsis: 'A caption',
        links: { referenced: itemId(3), 'other-page': itemId(3) },
      },
    ],
    [
      'y',
      { type: 'create', item: { title: 'Y', story: [para(9, `${'long '.repeat(200)}`)] }, date: 6000 },
      { slug: 'y', title: 'Y', date: 6000, synopsis: 'long '.repeat(112).slice(0, 560) },
    ],
  ]
  const expected = new Map<string, unknown>()
  for (const [slug, action, entry] of steps) {
    t.same(await site.act(slug, action), { status: 200 }, `${(action as { type: string }).type} ${slug}`)
    expected.set(slug, entry)
    const served = await site.sitemap()
    t.strictSame(served, [...expected.values()], `served sitemap after ${(action as { type: string }).type}`)
    t.strictSame(await site.sitemapFile(), served, 'status/sitemap.json matches')
  }
  t.equal(changed.length, steps.length, 'one page.changed event per write')
  t.equal(changed[0]?.site, HOST)
  t.equal(changed[0]?.slug, 'x')
  t.same(changed[0]?.action, steps[0]?.[1])
  t.strictSame(
    changed[0]?.page,
    { title: 'X', story: [], journal: [steps[0]?.[1]] },
    'the page as written by that action',
  )
  t.equal(changed.at(-1)?.slug, 'y')

  const deleted = await site.app.inject({
    method: 'DELETE',
    url: '/x.json',
    headers: { host: HOST, cookie: site.cookie },
  })
  t.equal(deleted.statusCode, 200)
  expected.delete('x')
  t.strictSame(await site.sitemap(), [...expected.values()], 'a deleted page leaves the sitemap')
  t.strictSame(await site.sitemapFile(), [...expected.values()])

  // A refused action leaves the sitemap as it was.
  t.same(await site.act('y', { type: 'edit', id: itemId(1), item: para(1, 'no such item'), date: 7000 }), {
    status: 409,
    code: 'WIKIFARM_ERR_ITEM_NOT_FOUND',
  })
  t.strictSame(await site.sitemap(), [...expected.values()])
})

t.test('synopsis and sitemap entry rules (wiki-client)', async (t) => {
  const page = (story: Page['story'], extra: Partial<Page> = {}): Page => ({ title: 'T', story, ...extra })
  t.equal(synopsis(page([para(1, 'first'), para(2, 'second')])), 'first')
  t.equal(
    synopsis(page([{ type: 'image', id: '1', text: 'caption' }, para(2, 'para two')])),
    'para two',
    'a paragraph wins',
  )
  t.equal(
    synopsis(
      page([
        { type: 'image', id: '1', text: 'caption' },
        { type: 'html', id: '2', text: 'html' },
      ]),
    ),
    'caption',
  )
  t.equal(
    synopsis(
      page([
        { type: 'image', id: '1' },
        { type: 'html', id: '2', text: '<b>hi</b>\nsecond line' },
      ]),
    ),
    '<b>hi</b>',
  )
  t.equal(
    synopsis(
      page([
        { type: 'factory', id: '1' },
        { type: 'factory', id: '2' },
        { type: 'factory', id: '3' },
      ]),
    ),
    'A page with 3 items.',
  )
  t.equal(
    synopsis(page([para(1, 'ignored')], { synopsis: 'Given\nsynopsis' })),
    'Given',
    "the page's own synopsis first",
  )
  t.equal(synopsis(page([para(1, `  ${'x'.repeat(600)}  `)])).length, 560)
  t.equal(synopsis(page([para(1, '\r\nafter a newline')])), 'after a newline', 'trimmed before the first line is taken')

  t.strictSame(
    sitemapEntry(
      's',
      page([
        para(1, 'See [[Constructor]], [[toString]] and [[Has Own Property]].'),
        { type: 'reference', id: itemId(2), slug: 'valueof', site: 'b.example' },
      ]),
    ).links,
    { constructor: itemId(1), tostring: itemId(1), 'has-own-property': itemId(1), valueof: itemId(2) },
    'links named like Object.prototype members',
  )

  const entry = sitemapEntry(
    'slug',
    page([], {
      journal: [
        { type: 'create', date: 5 },
        { type: 'edit', date: '2024-01-02T00:00:00Z' },
        { type: 'fork', date: 99999999999999 },
        { type: 'edit' },
      ],
    }),
  )
  t.strictSame(
    entry,
    { slug: 'slug', title: 'T', synopsis: 'A page with 0 items.', date: Date.parse('2024-01-02T00:00:00Z') },
    'the last dated entry that is not a fork; no links key without links',
  )
  t.strictSame(
    sitemapEntry('s', page([])),
    { slug: 's', title: 'T', synopsis: 'A page with 0 items.' },
    'no date key without a date',
  )
})

t.test('a failed sitemap save neither takes the farm down nor loses the entry', async (t) => {
  let failing = true
  const store = storeFailingStatus((name) => failing && name === 'sitemap.json')
  const farm = await startFarm(t, { farm: false, security_legacy: true }, undefined, { store })
  const host = 'localhost'
  t.equal(
    (await putAction(farm.app, host, null, 'x', { type: 'create', item: { title: 'X' }, date: 1 })).statusCode,
    200,
    'the page is saved',
  )
  await farm.kernel.sites.open('default').flush()
  t.same(
    await listDir(join(farm.data, 'status')).then((names) => names.filter((n) => n === 'sitemap.json')),
    [],
    'the sitemap save failed',
  )
  t.same(
    (await farm.app.inject({ url: '/system/sitemap.json', headers: { host } }))
      .json()
      .map((e: { slug: string }) => e.slug),
    ['x'],
    'the served sitemap has the page',
  )
  failing = false
  t.equal(
    (await putAction(farm.app, host, null, 'y', { type: 'create', item: { title: 'Y' }, date: 2 })).statusCode,
    200,
  )
  await farm.kernel.sites.open('default').flush()
  t.same(
    ((await readJson(join(farm.data, 'status', 'sitemap.json'))) as Array<{ slug: string }>).map((e) => e.slug),
    ['x', 'y'],
    'the next save has both',
  )
})

t.test('a fork from a remote that sends too much stops reading at the size limit', async (t) => {
  let sent = 0
  let onClose: (bytes: number) => void = () => {}
  const closed = new Promise<number>((resolve) => { onClose = resolve })
  const chunk = Buffer.alloc(64 * 1024, 0x20)
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.on('close', () => onClose(sent))
    const pump = () => {
      // Endless, unless the reader goes away (or 200 MiB, so a broken reader cannot hang the test).
      if (res.destroyed || sent > 200 * 1024 * 1024) return res.end()
      sent += chunk.length
      if (res.write(chunk)) setImmediate(pump)
      else res.once('drain', pump)
    }
    pump()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const site = await ownedSite(t)
  const before = await snapshot(site.data)
  const started = Date.now()
  t.same(await site.act('huge', { type: 'fork', site: `127.0.0.1:${(server.address() as AddressInfo).port}`, date: 1 }),
    { status: 404, code: 'WIKIFARM_ERR_PAGE_NOT_FOUND' })
  t.ok(Date.now() - started < 1500, 'refused well before the 2 s fetch timeout')
  const closedAt = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), 1000))])
  t.ok(closedAt >= 0 && closedAt < 32 * 1024 * 1024, `the connection was dropped near 5 MiB (at ${closedAt} bytes)`)
  t.same(await snapshot(site.data), before)
})
