// The real federated-wiki client (wiki-client, its plugins, wiki-security-friends' client) in
// headless Chromium against a real farm on 127.0.0.1: pages render, links open the lineup,
// the owner flow (claim, log out, log in with the secret, edit), visitors cannot edit, two
// sites in two tabs, and the Txtzyme and Linkmap items talking to their server plugins.
// Sites are <name>.localhost, which Chromium resolves to 127.0.0.1 by itself.
import t, { type Test } from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { claim, itemId, listenLocal, putAction, startFarm, type TestFarm } from './fixtures/test-farm.js'
import { launchBrowser, pageErrors, screenshot } from './fixtures/browser.js'
import { SESSION_COOKIE } from '../core/http/sessions.js'
import { needSocat, simulatedDevice } from './fixtures/txtzyme-device.js'

const PLUGINS = fileURLToPath(new URL('../plugins/', import.meta.url))
const WAIT = 15_000

/** The little of the DOM these tests ask for inside the page (the project compiles without the DOM lib). */
interface Dom { querySelectorAll(selector: string): { length: number } }

interface Env { browser: Browser; farm: TestFarm; port: number }

async function setUp(
  t: Test,
  plugins: TestFarm['kernel']['config']['plugins'] = { txtzyme: { enabled: false } },
): Promise<Env | null> {
  const browser = await launchBrowser(t)
  if (!browser) return null
  const farm = await startFarm(t, { farm: true, plugins }, undefined, { builtinPluginsDir: PLUGINS })
  const port = await listenLocal(farm)
  return { browser, farm, port }
}

function url(env: Env, host: string, path: string): string {
  return `http://${host}:${env.port}${path}`
}

/** A fresh browser context (no cookies), closed when the test ends; with the owner's cookie if given. */
async function visitor(t: Test, env: Env, owner?: { host: string; cookie: string }): Promise<BrowserContext> {
  const context = await env.browser.newContext()
  t.teardown(() => context.close())
  if (owner) {
    const [name, ...value] = owner.cookie.split('=')
    await context.addCookies([
      { name: name ?? '', value: value.join('='), domain: owner.host, path: '/', httpOnly: true, sameSite: 'Lax' },
    ])
  }
  return context
}

/** Opens a page and waits until the client has rendered its story items. */
async function open(context: BrowserContext, address: string): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage()
  const errors = pageErrors(page)
  await page.goto(address)
  await page.waitForFunction(() => {
    const browser = globalThis as unknown as { document: Dom; wiki?: unknown }
    return browser.document.querySelectorAll('.page .story .item').length > 0 && typeof browser.wiki === 'object'
  }, undefined, { timeout: WAIT })
  return { page, errors }
}

/** Edits a paragraph the way a person does: double-click, type, Escape saves. */
async function editParagraph(page: Page, pageId: string, oldText: string, newText: string): Promise<void> {
  const saved = page.waitForResponse(
    (r) => r.url().includes(`/page/${pageId}/action`) && r.request().method() === 'PUT',
    { timeout: WAIT },
  )
  await page.locator(`.page#${pageId} .item.paragraph`, { hasText: oldText }).first().dblclick()
  const editor = page.locator(`.page#${pageId} textarea`)
  await editor.fill(newText)
  await editor.press('Escape')
  const response = await saved
  if (response.status() !== 200) throw new Error(`the edit was refused: ${response.status()} ${await response.text()}`)
}

async function pageJson(
  env: Env,
  host: string,
  slug: string,
): Promise<{ title: string; story: Array<{ text?: string; type: string }> }> {
  const response = await env.farm.app.inject({ url: `/${slug}.json`, headers: { host } })
  return response.json()
}

t.test('a page renders with its story, and a link opens the next page in the lineup', async (t) => {
  const env = await setUp(t)
  if (!env) return
  const context = await visitor(t, env)
  const { page, errors } = await open(context, url(env, 'read.localhost', '/welcome-visitors.html'))
  try {
    t.equal(await page.title(), 'Welcome Visitors')
    t.match(await page.locator('.page#welcome-visitors .story').innerText(), /Welcome to this Federated Wiki site/)
    t.equal(await page.locator('.page#welcome-visitors h1').innerText().then((s) => s.trim()), 'Welcome Visitors')

    await page.locator('.page#welcome-visitors a.internal', { hasText: 'About This Wiki' }).first().click()
    await page.waitForSelector('.page#about-this-wiki .story .item', { timeout: WAIT })
    t.same(
      await page.locator('.page').evaluateAll((pages) => pages.map((p) => p.id)),
      ['welcome-visitors', 'about-this-wiki'],
      'two pages in the lineup',
    )
    await page.waitForURL(/\/view\/welcome-visitors\/view\/about-this-wiki$/, { timeout: WAIT })
    t.pass('the address shows the lineup')

    // The lineup address itself starts the client with both pages.
    const again = await open(context, url(env, 'read.localhost', '/view/welcome-visitors/view/about-this-wiki'))
    await again.page.waitForSelector('.page#about-this-wiki .story .item', { timeout: WAIT })
    t.equal(await again.page.locator('.page').count(), 2)
    t.same(errors, [], 'no script errors')
  } finally {
    await screenshot(page, 'render-and-lineup')
  }
})

t.test('search finds pages of the site by the words in their stories', async (t) => {
  const env = await setUp(t)
  if (!env) return
  const owner = await claim(t, env.farm.app, 'find.localhost')
  for (const [slug, title, text] of [
    ['zebra-crossings', 'Zebra Crossings', 'Painted stripes on the road.'],
    ['tigers', 'Tigers', 'Orange cats with stripes.'],
  ] as const) {
    await putAction(env.farm.app, 'find.localhost', owner.cookie, slug, {
      type: 'create',
      item: { title, story: [{ type: 'paragraph', id: itemId(1), text }] },
    })
  }
  const context = await visitor(t, env)
  const { page, errors } = await open(context, url(env, 'find.localhost', '/welcome-visitors.html'))
  try {
    // The client loads its own site's sitemap and search index as its first neighbour.
    await page.locator('footer .searchbox .pages', { hasText: '2 pages' }).waitFor({ timeout: WAIT })
    await page.locator('input.search').fill('stripes')
    await page.locator('input.search').press('Enter')
    const results = page.locator('.page').last()
    await results.locator('a.internal', { hasText: 'Tigers' }).first().waitFor({ timeout: WAIT })
    t.match(await results.innerText(), /Zebra Crossings/, 'both pages whose story says "stripes" are found')
    t.same(errors, [], 'no script errors')
  } finally {
    await screenshot(page, 'search')
  }
})

t.test('the owner flow: claim, edit, reload, log out, log in with the secret', async (t) => {
  const env = await setUp(t)
  if (!env) return
  const host = 'claim.localhost'
  const context = await visitor(t, env)
  const { page, errors } = await open(context, url(env, host, '/welcome-visitors.html'))
  try {
    // An unclaimed site offers to be claimed.
    const claimButton = page.locator('footer #security #show-security-dialog[title="Claim this Wiki"]')
    await claimButton.waitFor({ timeout: WAIT })
    const claimed = page.waitForResponse((r) => r.url().endsWith('/login') && r.request().method() === 'POST')
    await claimButton.click()
    const claimResponse = await claimed
    t.equal(claimResponse.status(), 200, 'POST /login claimed the site')
    const { ownerName, secret: answered } = await claimResponse.json() as { ownerName: string; secret: string }
    // The new owner is shown the secret, once, to keep.
    const shown = page.locator('dialog#wikifarm-secret input.secret')
    await shown.waitFor({ timeout: WAIT })
    const secret = await shown.inputValue()
    t.equal(secret, answered, 'the dialog shows the secret the claim answered')
    t.ok(
      await shown.evaluate((el) => {
        const box = el as unknown as { scrollWidth: number; clientWidth: number }
        return box.scrollWidth <= box.clientWidth
      }),
      'the whole secret is in view, none cut off',
    )
    await page.locator('dialog#wikifarm-secret button').click()
    const ownerFile = JSON.parse(await readFile(join(env.farm.data, host, 'status', 'owner.json'), 'utf8')) as {
      name: string
    }
    t.equal(ownerFile.name, ownerName, 'owner.json names the owner')
    await page.locator('footer > #site-owner', { hasText: ownerName }).waitFor({ timeout: WAIT })
    await page.locator('.editEnable').waitFor({ state: 'visible', timeout: WAIT })
    t.equal(await page.evaluate(() => (globalThis as unknown as { isOwner: boolean }).isOwner), true,
      'the new owner edits in place at once: the server, not local storage')

    // After a reload the page knows its owner: editing goes to the server.
    await page.reload()
    await page.waitForSelector('.page .story .item', { timeout: WAIT })
    t.equal(await page.evaluate(() => (globalThis as unknown as { isOwner: boolean }).isOwner), true, 'isOwner')
    await page.locator('footer #security #logout[title="Sign-out"]').waitFor({ timeout: WAIT })
    await editParagraph(page, 'welcome-visitors', 'Welcome to this', 'Edited in the browser by the owner.')
    await page.reload()
    await page
      .locator('.page#welcome-visitors .item.paragraph', { hasText: 'Edited in the browser by the owner.' })
      .waitFor({ timeout: WAIT })
    t.pass('the edit survives a reload')
    const stored = await pageJson(env, host, 'welcome-visitors')
    t.ok(stored.story.some((item) => item.text === 'Edited in the browser by the owner.'), 'and is in the page JSON')
    const onDisk = JSON.parse(await readFile(join(env.farm.data, host, 'pages', 'welcome-visitors'), 'utf8')) as {
      journal: Array<{ type: string }>
    }
    t.equal(onDisk.journal.at(-1)?.type, 'edit', 'the journal ends with the edit')

    // Log out: the footer offers to reclaim; a reload shows a visitor.
    const ownerCookie = (await context.cookies()).find((c) => c.name === SESSION_COOKIE)
    const loggedOut = page.waitForResponse((r) => r.url().endsWith('/logout'))
    await page.locator('footer #security #logout').click()
    const logout = await loggedOut
    t.equal(logout.status(), 200, 'the reference client logs out')
    // What Chromium really sends for wiki-security-friends' fetch('/logout', {mode: 'same-origin'}):
    // the request test/sessions.test.ts replays, which the origin rule must let through.
    const sent = await logout.request().allHeaders()
    t.equal(logout.request().method(), 'GET')
    t.ok(sent.origin === undefined || sent.origin === url(env, host, ''), `Origin: ${sent.origin ?? 'none'}`)
    t.equal(sent['sec-fetch-site'], 'same-origin', 'Sec-Fetch-Site: same-origin')
    const headersSent = Object.fromEntries(Object.entries(sent).filter(([k]) => k !== 'cookie'))
    t.comment(`logout request headers: ${JSON.stringify(headersSent)}`)
    // The cookie the browser held before logging out, replayed by hand: the server ended it.
    t.ok(ownerCookie, 'the owner had a session cookie')
    const copy = `${SESSION_COOKIE}=${ownerCookie?.value ?? ''}`
    const replayed = await putAction(env.farm.app, host, copy, 'after-logout',
      { type: 'create', item: { title: 'After logout' }, date: 1 })
    t.equal(replayed.statusCode, 403, 'a copy of the logged-out cookie cannot edit')
    await page.reload()
    await page.waitForSelector('.page .story .item', { timeout: WAIT })
    t.equal(
      await page.evaluate(() => (globalThis as unknown as { isAuthenticated: boolean }).isAuthenticated),
      false,
      'logged out',
    )
    const reclaim = page.locator('footer #security #show-security-dialog[title="Reclaim this Wiki"]')
    await reclaim.waitFor({ timeout: WAIT })

    // A wrong secret is refused, and the dialog says so; the right one logs the owner in again,
    // and the page is editable at once, without a reload.
    await reclaim.click()
    await page.locator('#reclaim #reclaimcode').fill('not-the-secret')
    const refused = page.waitForResponse((r) => r.url().includes('/auth/reclaim'))
    await page.locator('#reclaim #confirmBtn').click()
    t.equal((await refused).status(), 401, 'a wrong secret is refused')
    await page
      .locator('dialog#reclaim[open] .wikifarm-error', { hasText: 'That secret does not match the owner of this wiki' })
      .waitFor({ timeout: WAIT })
    t.pass('the dialog opens again and says the secret does not match')
    await page.locator('#reclaim #reclaimcode').fill(secret)
    const accepted = page.waitForResponse((r) => r.url().includes('/auth/reclaim'))
    await page.locator('#reclaim #confirmBtn').click()
    t.equal((await accepted).status(), 200, 'the secret logs the owner in')
    await page.locator('.editEnable').waitFor({ state: 'visible', timeout: WAIT })
    t.equal(await page.locator('dialog#reclaim .wikifarm-error').count(), 0, 'the refusal is gone')
    t.equal(await page.evaluate(() => (globalThis as unknown as { isOwner: boolean }).isOwner), true, 'owner again')
    await editParagraph(page, 'welcome-visitors', 'Edited in the browser', 'Edited again after logging in.')
    t.ok(
      (await pageJson(env, host, 'welcome-visitors')).story.some(
        (item) => item.text === 'Edited again after logging in.',
      ),
      'edited in place, without a reload, and stored on the server',
    )
    t.same(errors, ['http 401 /auth/reclaim/'], 'no script errors; only the wrong secret failed')
  } finally {
    await screenshot(page, 'owner-flow')
  }
})

t.test('a logged-out visitor of a claimed site cannot edit it', async (t) => {
  const env = await setUp(t)
  if (!env) return
  const host = 'guarded.localhost'
  await claim(t, env.farm.app, host)
  const before = await pageJson(env, host, 'welcome-visitors')
  const context = await visitor(t, env)
  const { page } = await open(context, url(env, host, '/welcome-visitors.html'))
  try {
    t.equal(await page.evaluate(() => (globalThis as unknown as { isOwner: boolean }).isOwner), false)
    t.equal(await page.locator('.editEnable').first().isVisible(), false, 'no editing controls')
    // The client keeps a visitor's edit in the browser (localStorage); the server is not asked.
    await page.locator('.page#welcome-visitors .item.paragraph').first().dblclick()
    const editor = page.locator('.page#welcome-visitors textarea')
    if (await editor.count()) {
      await editor.fill('A visitor was here.')
      await editor.press('Escape')
    }
    // Whatever the client does, the server refuses a visitor's write.
    const status = await page.evaluate(async () => {
      const action = {
        type: 'add',
        id: 'aaaaaaaaaaaaaaaa',
        item: { type: 'paragraph', id: 'aaaaaaaaaaaaaaaa', text: 'forged' },
      }
      const response = await fetch('/page/welcome-visitors/action', {
        method: 'PUT',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `action=${encodeURIComponent(JSON.stringify(action))}`,
      })
      return response.status
    })
    t.equal(status, 403, 'PUT from the visitor is refused')
    t.same(await pageJson(env, host, 'welcome-visitors'), before, 'the page on the server is unchanged')
  } finally {
    await screenshot(page, 'visitor-cannot-edit')
  }
})

t.test('two farm sites in two tabs keep their own pages', async (t) => {
  const env = await setUp(t)
  if (!env) return
  for (const [host, words] of [
    ['one.localhost', 'first site words'],
    ['two.localhost', 'second site words'],
  ] as const) {
    const owner = await claim(t, env.farm.app, host)
    await putAction(env.farm.app, host, owner.cookie, 'local-news', {
      type: 'create',
      item: { title: 'Local News', story: [{ type: 'paragraph', id: itemId(7), text: words }] },
    })
  }
  const context = await visitor(t, env)
  const one = await open(context, url(env, 'one.localhost', '/local-news.html'))
  const two = await open(context, url(env, 'two.localhost', '/local-news.html'))
  try {
    t.equal((await one.page.locator('.page#local-news .item.paragraph').innerText()).trim(), 'first site words')
    t.equal((await two.page.locator('.page#local-news .item.paragraph').innerText()).trim(), 'second site words')
    await one.page.reload()
    await one.page.waitForSelector('.page#local-news .item.paragraph', { timeout: WAIT })
    t.equal(
      (await one.page.locator('.page#local-news .item.paragraph').innerText()).trim(),
      'first site words',
      'still its own after the other tab loaded',
    )
  } finally {
    await screenshot(one.page, 'two-sites-one')
    await screenshot(two.page, 'two-sites-two')
  }
})

t.test('a Txtzyme item gets output from the simulated device through the kernel', async (t) => {
  if (!(await needSocat(t))) return
  const sim = await simulatedDevice(t, { speed: 100 })
  const env = await setUp(t, { txtzyme: { options: { device: sim.path } } })
  if (!env) return
  const host = 'zyme.localhost'
  const owner = await claim(t, env.farm.app, host)
  await putAction(env.farm.app, host, owner.cookie, 'blink', {
    type: 'create',
    item: { title: 'Blink', story: [{ type: 'txtzyme', id: itemId(3), text: 'OPEN _hello from the device_' }] },
  })
  const context = await visitor(t, env, { host, cookie: owner.cookie })
  const { page } = await open(context, url(env, host, '/blink.html'))
  try {
    const caption = page.locator('.page#blink .item.txtzyme p.caption')
    await caption.filter({ hasText: 'rcvd hello from the device' }).waitFor({ timeout: WAIT })
    t.match(
      await caption.innerText(),
      /1 sent.*1 rcvd hello from the device/s,
      'the line went out and its output came back',
    )
  } finally {
    await screenshot(page, 'txtzyme')
  }
})

t.test('a Linkmap item shows the live map and updates when a page is edited in another tab', async (t) => {
  const env = await setUp(t)
  if (!env) return
  const host = 'links.localhost'
  const owner = await claim(t, env.farm.app, host)
  await putAction(env.farm.app, host, owner.cookie, 'map', {
    type: 'create',
    item: {
      title: 'Map',
      story: [
        { type: 'linkmap', id: itemId(4), text: '' },
        { type: 'paragraph', id: itemId(5), text: 'See [[Notes]].' },
      ],
    },
  })
  await putAction(env.farm.app, host, owner.cookie, 'notes', {
    type: 'create',
    item: { title: 'Notes', story: [{ type: 'paragraph', id: itemId(6), text: 'Nothing linked yet.' }] },
  })
  const context = await visitor(t, env, { host, cookie: owner.cookie })
  const watcher = await open(context, url(env, host, '/map.html'))
  const editor = await open(context, url(env, host, '/notes.html'))
  try {
    const row = (slug: string) => watcher.page.locator(`.item.linkmap li[data-slug="${slug}"]`)
    await row('map').waitFor({ timeout: WAIT })
    t.match(await row('map').innerText(), /map → notes/, 'the map as it was')
    t.match(await row('notes').innerText(), /^notes$/, 'notes links nowhere yet')

    await editParagraph(editor.page, 'notes', 'Nothing linked yet.', 'Now pointing at [[Map]] and [[Elsewhere]].')
    await watcher.page
      .locator('.item.linkmap li[data-slug="notes"]', { hasText: 'elsewhere' })
      .waitFor({ timeout: WAIT })
    t.match(await row('notes').innerText(), /notes → map, elsewhere/, 'the edit in the other tab shows up live')
    t.equal(await watcher.page.locator('.item.linkmap').getAttribute('data-linkmap-updates'), '1', 'as one update')
    t.same(watcher.errors, [], 'no script errors')
  } finally {
    await screenshot(watcher.page, 'linkmap-watcher')
    await screenshot(editor.page, 'linkmap-editor')
  }
})

t.test(
  'the owner makes a page from a missing link, adds a Markdown item from the factory, and forks a page of another site',
  async (t) => {
    const env = await setUp(t)
    if (!env) return
    const host = 'maker.localhost'
    const owner = await claim(t, env.farm.app, host)
    const other = await claim(t, env.farm.app, 'other.localhost')
    await putAction(env.farm.app, 'other.localhost', other.cookie, 'borrowed', {
      type: 'create',
      item: { title: 'Borrowed', story: [{ type: 'paragraph', id: itemId(8), text: 'Written on the other site.' }] },
    })
    const context = await visitor(t, env, { host, cookie: owner.cookie })
    const { page, errors } = await open(context, url(env, host, '/welcome-visitors.html'))
    try {
      await editParagraph(page, 'welcome-visitors', 'Welcome to this', 'Go to [[Brand New Page]] now.')
      await page.locator('.page#welcome-visitors a.internal', { hasText: 'Brand New Page' }).click()
      const ghost = page.locator('.page#brand-new-page')
      await ghost.locator('button.create').click({ timeout: WAIT })
      await ghost.locator('.add-factory').click({ timeout: WAIT })
      await ghost.locator('.item.factory a', { hasText: 'Markdown' }).click({ timeout: WAIT })
      const saved = page.waitForResponse(
        (r) => r.url().includes('/page/brand-new-page/action') && r.request().method() === 'PUT',
      )
      await ghost.locator('textarea').fill('# A heading\n\nSome *emphasis*.')
      await ghost.locator('textarea').press('Escape')
      t.equal((await saved).status(), 200)
      await ghost.locator('.item.markdown em', { hasText: 'emphasis' }).waitFor({ timeout: WAIT })
      const made = await pageJson(env, host, 'brand-new-page')
      t.same(
        made.story.map((item) => [item.type, item.text]),
        [['markdown', '# A heading\n\nSome *emphasis*.']],
        'created with its Markdown item',
      )

      // A page of another site of the farm in the lineup, forked into this one.
      await page.goto(url(env, host, `/view/welcome-visitors/other.localhost:${env.port}/borrowed`))
      const remote = page.locator('.page#borrowed')
      await remote.locator('.item.paragraph', { hasText: 'Written on the other site.' }).waitFor({ timeout: WAIT })
      const forked = page.waitForResponse(
        (r) => r.url().includes('/page/borrowed/action') && r.request().method() === 'PUT',
      )
      await remote.locator('.fork-page').click()
      t.equal((await forked).status(), 200)
      const copy = (await pageJson(env, host, 'borrowed')) as {
        story: Array<{ text?: string }>
        journal?: Array<{ type: string; site?: string }>
      }
      t.equal(copy.story[0]?.text, 'Written on the other site.', 'the fork is a copy on this site')
      t.match(
        copy.journal?.at(-1),
        { type: 'fork', site: `other.localhost:${env.port}` },
        'its journal says where it came from',
      )
      t.same(errors, ['http 404 /brand-new-page.json'], 'no script errors; only the missing page was missing')
    } finally {
      await screenshot(page, 'create-markdown-fork')
    }
  },
)
