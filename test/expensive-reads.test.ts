// Expensive reads are cached: export.json and sitemap.xml walk a whole site, so each is built
// once per version of the site and served from memory until a page changes (the site index
// and sitemap.json already are); every change shows in the next read. Reads in general are
// rate-limited per address (test/connection-limits.test.ts).
import t from 'tap'
import { FilePageStore, type PageStore, type SiteStore } from '../core/pages/page-store.js'
import { claim, itemId, putAction, startFarm } from './fixtures/test-farm.js'

const HOST = 'big.example'

/** The file store, counting the page reads that reach it. */
function countingStore(): { store: PageStore; reads: () => number } {
  const files = new FilePageStore()
  let reads = 0
  return {
    reads: () => reads,
    store: {
      site(root: string): SiteStore {
        const inner = files.site(root)
        return new Proxy(inner, {
          get(target, key) {
            const value = Reflect.get(target, key) as unknown
            if (key === 'getPage') return (slug: string) => { reads++; return target.getPage(slug) }
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
          },
        })
      },
    },
  }
}

t.test('export.json and sitemap.xml are built once per version of the site', async (t) => {
  const { store, reads } = countingStore()
  const farm = await startFarm(t, { farm: true, allowed: [HOST] }, undefined, { store })
  const { cookie } = await claim(t, farm.app, HOST)
  for (let n = 1; n <= 50; n++) {
    t.equal(
      (await putAction(farm.app, HOST, cookie, `page-${n}`, { type: 'create', item: { title: `Page ${n}` }, date: n }))
        .statusCode,
      200,
    )
  }
  const get = (url: string) => farm.app.inject({ url, headers: { host: HOST } })

  const first = await get('/system/export.json')
  t.equal(first.statusCode, 200)
  t.equal(Object.keys(first.json() as object).length, 50, 'the export holds every page')
  const afterFirst = reads()
  for (let i = 0; i < 20; i++) t.equal((await get('/system/export.json')).body, first.body)
  t.equal(reads(), afterFirst, 'twenty more exports read no page')

  const xml = await get('/sitemap.xml')
  t.equal(xml.statusCode, 200)
  t.equal((xml.body.match(/<url>/g) ?? []).length, 50)
  t.equal((await get('/sitemap.xml')).body, xml.body, 'the same sitemap.xml again')

  const id = itemId(1)
  t.equal(
    (
      await putAction(farm.app, HOST, cookie, 'page-7', {
        type: 'add',
        id,
        item: { type: 'paragraph', id, text: 'changed' },
        date: 99,
      })
    ).statusCode,
    200,
  )
  const changed = (await get('/system/export.json')).json() as Record<string, { story: Array<{ text: string }> }>
  t.equal(changed['page-7']?.story[0]?.text, 'changed', 'an edit shows in the next export')
  t.equal(
    (await putAction(farm.app, HOST, cookie, 'page-51', { type: 'create', item: { title: 'Page 51' }, date: 100 }))
      .statusCode,
    200,
  )
  t.equal(
    ((await get('/sitemap.xml')).body.match(/<url>/g) ?? []).length,
    51,
    'a new page shows in the next sitemap.xml',
  )
  t.equal(
    (await farm.app.inject({ method: 'DELETE', url: '/page-51.json', headers: { host: HOST, cookie } })).statusCode,
    200,
  )
  t.equal(
    Object.keys((await get('/system/export.json')).json() as object).length,
    50,
    'a deleted page leaves the next export',
  )
})
