// The administrator's way in from a browser: /system/status.html offers a login form, which
// says why a secret is refused, and with the admin secret shows the status, on a site whose
// footer lock would claim it rather than log anyone in (an unclaimed one), claiming nothing.
import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { claim, listenLocal, startFarm } from './fixtures/test-farm.js'
import { launchBrowser, pageErrors, screenshot } from './fixtures/browser.js'
import { ADMIN_SECRET } from './fixtures/admin.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins/', import.meta.url))
const WAIT = 15_000

t.test('the admin logs in from the status page of an unclaimed site', async (t) => {
  const browser = await launchBrowser(t)
  if (!browser) return
  const farm = await startFarm(t, { farm: true, admin: ADMIN_SECRET }, undefined, { builtinPluginsDir: PLUGINS })
  const port = await listenLocal(farm)
  const owned = await claim(t, farm.app, 'owned.localhost')
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const page = await context.newPage()
  const errors = pageErrors(page)
  try {
    const first = await page.goto(`http://fresh.localhost:${port}/system/status.html`)
    t.equal(first?.status(), 403)
    const secret = page.locator('#admin-login input[name=secret]')
    await secret.fill('not-the-secret')
    await page.locator('#admin-login button').click()
    await page.locator('#admin-login .error', { hasText: 'This wiki has no owner yet' }).waitFor({ timeout: WAIT })
    t.pass('a wrong secret on an unclaimed site: the form says why')

    await secret.fill(ADMIN_SECRET)
    await page.locator('#admin-login button').click()
    await page.locator('h2', { hasText: 'Plugins' }).waitFor({ timeout: WAIT })
    t.match(await page.locator('table').innerText(), /echo\s+running/, 'the status, after one login')
    t.notOk(existsSync(join(farm.data, 'fresh.localhost', 'status', 'owner.json')), 'and the site is still unclaimed')

    // The owner's secret is not the administrator's: said so, on a claimed site.
    const other = await context.newPage()
    await other.goto(`http://owned.localhost:${port}/system/status.html`)
    await other.locator('#admin-login input[name=secret]').fill(owned.secret)
    await other.locator('#admin-login button').click()
    await other
      .locator('#admin-login .error', { hasText: 'owner secret, not the farm administrator' })
      .waitFor({ timeout: WAIT })
    t.pass('an owner secret is told apart')
    // The refused logins and the first (403) answer of the page itself are expected.
    t.same(
      errors.filter((e) => !e.includes('/auth/reclaim/') && !e.includes('/system/status.html')),
      [],
      'no script errors',
    )
  } finally {
    await screenshot(page, 'status-login')
  }
})
