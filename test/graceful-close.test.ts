// Closing the farm: requests that arrive while it closes get 503, and every write that was
// acknowledged is on disk, in its page and in the sitemap, when close() resolves.
import t from 'tap'
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { createKernel } from '../core/kernel.js'
import { DEFAULTS } from '../core/farm-config.js'
import { claim, putAction, COOKIE_SECRET } from './fixtures/test-farm.js'

t.test('close answers 503 to new requests and flushes acknowledged writes', async (t) => {
  const data = t.testdir()
  const kernel = await createKernel({
    ...DEFAULTS, data, farm: true, cookieSecret: COOKIE_SECRET, cookieSecretIsRandom: false,
  }, { logger: false })
  const { cookie } = await claim(t, kernel.app, 'c.example')
  const writes = Array.from({ length: 20 }, (_, i) => putAction(kernel.app, 'c.example', cookie, `page-${i}`, {
    type: 'create', id: '0123456789abcdef', item: { title: `Page ${i}`, story: [] }, date: i + 1,
  }))
  // close() begins once some writes are done and others are in flight: each is either
  // finished or refused, never lost.
  await Promise.all(writes.slice(0, 5))
  const closing = kernel.close()
  const late = await kernel.app.inject({ url: '/welcome-visitors.json', headers: { host: 'c.example' } })
  const results = await Promise.all(writes)
  await closing
  t.equal(late.statusCode, 503, 'a request while closing gets 503')
  t.equal(late.json().code, 'WIKIFARM_ERR_CLOSING')
  t.ok(results.every((r) => r.statusCode === 200 || r.statusCode === 503), 'every write is answered: done or refused')
  const acked = results.flatMap((r, i) => (r.statusCode === 200 ? [i] : []))
  for (const i of acked) {
    const page = JSON.parse(readFileSync(join(data, 'c.example', 'pages', `page-${i}`), 'utf8')) as { title: string }
    t.equal(page.title, `Page ${i}`, `acknowledged page-${i} is on disk`)
  }
  const sitemap = JSON.parse(readFileSync(join(data, 'c.example', 'status', 'sitemap.json'), 'utf8')) as {
    slug: string
  }[]
  t.same(
    sitemap.map((e) => e.slug).sort(),
    acked.map((i) => `page-${i}`).sort(),
    'the sitemap on disk lists exactly the acknowledged pages',
  )
  t.notOk(existsSync(join(data, 'c.example', 'status', 'sitemap.dirty')), 'and is marked clean')
})
