// The client plugins the reference bundles, and the image plugin's server part, in headless
// Chromium against a real farm: a page with one item of each bundled plugin (the sample item of
// its own about page) renders with no error, and an image uploaded through the real
// wiki-plugin-image server part shows in an image item.
import t from 'tap'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { INSTALLED_LEGACY, claim, http, itemId, listenLocal, putAction, startFarm } from './fixtures/test-farm.js'
import { launchBrowser, pageErrors, screenshot } from './fixtures/browser.js'
import { multipart } from './fixtures/multipart.js'
import { packageFolder } from '../core/client/files.js'

const WAIT = 20_000
const REFERENCE_LIST = join(import.meta.dirname, 'fixtures', 'reference-client-plugins.json')
const reference = JSON.parse(readFileSync(REFERENCE_LIST, 'utf8')) as { plugins: string[] }
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5Erk' +
  'Jggg==', 'base64')

interface Item { type: string; id: string; text?: string; [key: string]: unknown }
interface Dom { querySelectorAll(selector: string): { length: number } }

/** The first item of the plugin's own type in its about pages: what its author shows it with. */
function sampleItem(name: string, n: number): Item {
  const dir = join(packageFolder(`wiki-plugin-${name}`) ?? '', 'pages')
  let files: string[]
  try {
    files = readdirSync(dir).sort()
  } catch {
    files = []
  }
  for (const file of files) {
    try {
      const page = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { story?: Item[] }
      const item = page.story?.find((i) => i.type === name)
      if (item) return { ...item, id: itemId(n) }
    } catch {
      continue
    }
  }
  // The future item (wiki-client's own) stands for a page not yet written: it has a title.
  return { type: name, id: itemId(n), text: `A ${name} item`, title: 'Every Plugin' }
}

/** The bundled plugins whose client imports a library from a CDN (no internet in CI). */
const needsInternet = reference.plugins.filter((name) => {
  try {
    const code = readFileSync(join(packageFolder(`wiki-plugin-${name}`) ?? '', 'client', `${name}.js`), 'utf8')
    return /https:\/\/(cdn\.jsdelivr\.net|unpkg\.com)\//.test(code)
  } catch {
    return false
  }
})

t.test('a page with one item of each client plugin the reference bundles renders without an error', async (t) => {
  const browser = await launchBrowser(t)
  if (!browser) return
  const farm = await startFarm(t, { farm: true }, undefined, { legacyNodeModules: INSTALLED_LEGACY })
  const port = await listenLocal(farm)
  const host = 'plugins.localhost'
  const owner = await claim(t, farm.app, host)
  const story = reference.plugins.map((name, n) => sampleItem(name, n + 1))
  const create = { type: 'create', item: { title: 'Every Plugin', story }, date: 1 }
  const created = await putAction(farm.app, host, owner.cookie, 'every-plugin', create)
  t.equal(created.statusCode, 200)

  // As the owner, as a reader of their own farm would: the recycler item lists the recycler.
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const [cookieName, ...cookieValue] = owner.cookie.split('=')
  await context.addCookies([
    { name: cookieName ?? '', value: cookieValue.join('='), domain: host, path: '/', httpOnly: true, sameSite: 'Lax' },
  ])
  const page = await context.newPage()
  const errors = pageErrors(page)
  page.on('console', (message) => { if (/plugin error|unexpected error/.test(message.text())) errors.push(`console: ${message.text()}`) })
  try {
    await page.goto(`http://${host}:${port}/every-plugin.html`)
    await page.waitForFunction((count) => {
      const dom = (globalThis as unknown as { document: Dom }).document
      return dom.querySelectorAll('.page#every-plugin .story .item').length === count
    }, story.length, { timeout: WAIT })
    // Plugins load their scripts and render asynchronously.
    await page.waitForTimeout(3000)
    const classes = (selector: string) => page.locator(selector).evaluateAll((items) => items.map((i) => i.className))
    const types = await classes('.page#every-plugin .story .item')
    for (const name of reference.plugins) {
      t.ok(types.some((c) => c.split(' ').includes(name)), `a ${name} item is on the page`)
    }
    const failed = await classes('.page#every-plugin .story .item:has(.error)')
    const offline = reference.plugins.filter((name) => !needsInternet.includes(name))
    for (const name of offline) t.notOk(failed.some((c) => c.split(' ').includes(name)), `the ${name} item renders`)
    for (const name of needsInternet) {
      const script = await http(port, 'GET', `/plugins/${name}/${name}.js`, host)
      t.equal(script.status, 200, `${name} loads libraries from a CDN, unreachable here; the farm serves its script`)
    }
    // What fails is what this sandbox cannot reach: the CDN imports, the client's fallback to
    // /plugins/<name>.js after them (the reference answers it 404 too), Leaflet's global of the map.
    const names = needsInternet.join('|')
    const cdn = new RegExp(`Can't find plugin for '(${names})'|^http 404 /plugins/(${names})\\.js$|` +
      'dynamically imported module: https://(cdn\\.jsdelivr\\.net|unpkg\\.com)/|^pageerror: L is not defined$')
    t.same(errors.filter((e) => !cdn.test(e)), [], 'no other script error, no failed request')
  } finally {
    await screenshot(page, 'legacy-every-client-plugin')
  }
})

t.test('an image uploaded through wiki-plugin-image\'s server part shows in an image item', async (t) => {
  const browser = await launchBrowser(t)
  if (!browser) return
  const farm = await startFarm(t, { farm: true }, undefined, { legacyNodeModules: INSTALLED_LEGACY })
  const port = await listenLocal(farm)
  const host = 'photos.localhost'
  const owner = await claim(t, farm.app, host)
  const md5 = createHash('md5').update(PNG).digest('hex')
  const { body, headers } = multipart([{ name: 'image', value: PNG, filename: 'blob', type: 'image/png' }])
  const asOwner = { ...headers, cookie: owner.cookie }
  const upload = await http(port, 'POST', `/plugins/image/upload/${md5}.png`, host, { headers: asOwner, body })
  t.equal(upload.body, 'success')
  const item = { type: 'image', id: itemId(1), text: 'A pixel', url: `/assets/plugins/image/${md5}.png`, size: 'wide' }
  const create = { type: 'create', item: { title: 'A Pixel', story: [item] }, date: 1 }
  t.equal((await putAction(farm.app, host, owner.cookie, 'a-pixel', create)).statusCode, 200)

  const context = await browser.newContext()
  t.teardown(() => context.close())
  const page = await context.newPage()
  const errors = pageErrors(page)
  try {
    await page.goto(`http://${host}:${port}/a-pixel.html`)
    const img = page.locator('.page#a-pixel .item.image img').first()
    await img.waitFor({ timeout: WAIT })
    await page.waitForFunction(() => {
      type Img = { complete: boolean; naturalWidth: number }
      const dom = (globalThis as unknown as { document: { querySelector(s: string): Img | null } }).document
      const el = dom.querySelector('.page#a-pixel .item.image img')
      return el !== null && el.complete && el.naturalWidth > 0
    }, undefined, { timeout: WAIT })
    t.match(await img.getAttribute('src'), `/assets/plugins/image/${md5}.png`, 'the item shows the uploaded file')
    const width = await img.evaluate((el) => (el as unknown as { naturalWidth: number }).naturalWidth)
    t.equal(width, 1, 'and it decoded: 1 pixel wide')
    t.same(errors, [], 'no script errors')
  } finally {
    await screenshot(page, 'legacy-image-item')
  }
})
