// Items, pages and actions have size caps with a coded 413 (WIKIFARM_ERR_TOO_LARGE, `reason`
// naming the cap), and a page cannot grow past its cap through its journal: before the caps,
// 15 edits of a 4 MB item made a 64 MB page file. Old journal entries are compacted (their
// items' payloads dropped, oldest first), so the journal still replays as the reference
// client replays it; what is refused loses nothing.
import t from 'tap'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { claim, itemId, putAction, startFarm } from './fixtures/test-farm.js'
import { JOURNAL_COMPACTED } from '../core/pages/page-actions.js'
import type { Page } from '../schemas/page.js'

const HOST = 'caps.example'
const MB = 1024 * 1024

function jsonAction(app: Parameters<typeof putAction>[0], cookie: string, slug: string, action: unknown) {
  return app.inject({
    method: 'PUT', url: `/page/${slug}/action`, payload: JSON.stringify({ action }),
    headers: { host: HOST, cookie, 'content-type': 'application/json' },
  })
}

t.test('15 edits of a 4 MB item do not grow the page past the page cap', async (t) => {
  // The defaults: items up to 4 MiB, pages up to 16 MiB; the body limit is raised so that
  // only the caps under test can refuse.
  const farm = await startFarm(t, { farm: true, allowed: [HOST], uploadLimit: 8 * MB })
  const { cookie } = await claim(t, farm.app, HOST)
  const id = itemId(1)
  t.equal(
    (await putAction(farm.app, HOST, cookie, 'big', { type: 'create', item: { title: 'Big' }, date: 1 })).statusCode,
    200,
  )
  t.equal(
    (
      await jsonAction(farm.app, cookie, 'big', {
        type: 'add',
        id,
        item: { type: 'paragraph', id, text: 'start' },
        date: 2,
      })
    ).statusCode,
    200,
  )
  const file = join(farm.data, HOST, 'pages', 'big')
  for (let n = 0; n < 15; n++) {
    const text = String.fromCharCode(97 + n).repeat(4 * MB - 100)
    const response = await jsonAction(farm.app, cookie, 'big', {
      type: 'edit',
      id,
      item: { type: 'paragraph', id, text },
      date: 10 + n,
    })
    t.equal(response.statusCode, 200, `edit ${n + 1}`)
    const size = (await stat(file)).size
    if (size > 16 * MB + 64 * 1024) t.fail(`edit ${n + 1} grew the page file to ${size} bytes`)
  }
  const size = (await stat(file)).size
  t.ok(size <= 16 * MB + 64 * 1024, `the page file is ${(size / MB).toFixed(1)} MB after 15 edits (cap 16 MB of JSON)`)
  const page = JSON.parse(await readFile(file, 'utf8')) as Page
  t.equal(page.story[0]?.text, 'o'.repeat(4 * MB - 100), 'the story holds the last edit')
  const journal = page.journal ?? []
  t.equal(journal.length, 17, 'every action is still in the journal')
  t.same(journal.map((e) => e.type), ['create', 'add', ...Array(15).fill('edit')])
  const last = journal.at(-1) as unknown as { item: { text: string } }
  t.equal(last.item.text, page.story[0]?.text, 'the newest entry keeps its item')
  const compacted = journal.filter((e) => (e.item as { text?: string } | undefined)?.text === JOURNAL_COMPACTED)
  t.ok(compacted.length >= 12, `${compacted.length} old entries were compacted`)
  t.ok(
    compacted.every((e) => (e.item as { id?: string }).id === id),
    'compacted entries keep their item id, so revisions replay',
  )
})

t.test('an oversize item, action or page gets 413 and loses nothing', async (t) => {
  const farm = await startFarm(t, {
    farm: true,
    allowed: [HOST],
    itemLimit: 64 * 1024,
    actionLimit: 128 * 1024,
    pageLimit: 256 * 1024,
  })
  const { cookie } = await claim(t, farm.app, HOST)
  t.equal(
    (await putAction(farm.app, HOST, cookie, 'p', { type: 'create', item: { title: 'P' }, date: 1 })).statusCode,
    200,
  )
  const file = join(farm.data, HOST, 'pages', 'p')
  const before = await readFile(file, 'utf8')

  const big = (n: number, bytes: number) => ({ type: 'paragraph', id: itemId(n), text: 'x'.repeat(bytes) })
  const item = await putAction(farm.app, HOST, cookie, 'p', {
    type: 'add',
    id: itemId(1),
    item: big(1, 70 * 1024),
    date: 2,
  })
  t.equal(item.statusCode, 413, 'an item over itemLimit')
  t.match(item.json(), { code: 'WIKIFARM_ERR_TOO_LARGE', reason: 'item', error: /itemLimit/ })

  const created = await putAction(farm.app, HOST, cookie, 'q', {
    type: 'create', item: { title: 'Q', story: [big(1, 10), big(2, 70 * 1024)] }, date: 2,
  })
  t.equal(created.statusCode, 413, 'a created page bringing an item over itemLimit')
  t.match(created.json(), { reason: 'item' })

  const action = await putAction(farm.app, HOST, cookie, 'p', {
    type: 'add',
    id: itemId(1),
    item: { ...big(1, 10), pad: 'y'.repeat(130 * 1024) },
    date: 2,
  })
  t.equal(action.statusCode, 413, 'an action over actionLimit')
  t.match(action.json(), { code: 'WIKIFARM_ERR_TOO_LARGE', reason: 'action' })

  t.equal(await readFile(file, 'utf8'), before, 'the page is as it was')
  t.equal(
    (await farm.app.inject({ url: '/q.json', headers: { host: HOST } })).statusCode,
    404,
    'the refused page was not created',
  )

  // Items under their cap, until the story itself passes the page cap.
  let n = 0
  let status = 200
  while (status === 200 && n < 10) {
    n++
    status = (
      await putAction(farm.app, HOST, cookie, 'p', {
        type: 'add',
        id: itemId(n),
        item: big(n, 60 * 1024),
        after: n > 1 ? itemId(n - 1) : undefined,
        date: 2 + n,
      })
    ).statusCode
  }
  t.equal(status, 413, `the item that would take the story past pageLimit is refused (item ${n})`)
  const kept = JSON.parse(await readFile(file, 'utf8')) as Page
  t.equal(kept.story.length, n - 1, 'every item added before it is kept')
  t.ok(Buffer.byteLength(JSON.stringify(kept)) <= 256 * 1024, 'the page stays under its cap')
})
