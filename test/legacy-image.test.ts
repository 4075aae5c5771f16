// wiki-plugin-image (the real package, unchanged) under the legacy adapter, over real HTTP:
// the upload stores the image where the reference puts it (the farm's commons, hard-linked into
// the site's assets/plugins/image), the image is served back, only the owner may upload, and a
// gallery the plugin cannot read ends that request only.
import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { INSTALLED_LEGACY, claim, http, listDir, listenLocal, startFarm } from './fixtures/test-farm.js'
import { ADMIN_SECRET, adminLogin } from './fixtures/admin.js'
import { multipart } from './fixtures/multipart.js'
import type { LegacyStatus } from '../core/plugin-host/legacy/host.js'

const A = 'a.example'
const B = 'b.example'
// A 1×1 PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5Erk' +
  'Jggg==', 'base64')
const MD5 = createHash('md5').update(PNG).digest('hex')

const legacyFarm = (t: Test) =>
  startFarm(t, { farm: true, admin: ADMIN_SECRET }, undefined, { legacyNodeModules: INSTALLED_LEGACY })

t.test('an owner uploads an image: commons and the site\'s assets, served back, as in the reference', async (t) => {
  const farm = await legacyFarm(t)
  const port = await listenLocal(farm)
  const a = await claim(t, farm.app, A)
  const b = await claim(t, farm.app, B)
  const upload = (host: string, cookie?: string, name = `${MD5}.png`) => {
    const { body, headers } = multipart([{ name: 'image', value: PNG, filename: 'blob', type: 'image/png' }])
    const withCookie = { ...headers, ...(cookie ? { cookie } : {}) }
    return http(port, 'POST', `/plugins/image/upload/${name}`, host, { headers: withCookie, body })
  }

  const visitor = await upload(A)
  t.equal(visitor.status, 403)
  t.equal(visitor.body, 'must be owner', "the plugin's own refusal")
  t.equal((await upload(A, b.cookie)).status, 403, "another site's owner is refused")
  t.notOk(existsSync(join(farm.data, 'commons', `${MD5}.png`)), 'nothing stored')

  const ok = await upload(A, a.cookie)
  t.equal(ok.status, 200)
  t.equal(ok.body, 'success')
  const commons = join(farm.data, 'commons', `${MD5}.png`)
  const asset = join(farm.data, A, 'assets', 'plugins', 'image', `${MD5}.png`)
  t.ok(existsSync(commons), 'stored in <data>/commons')
  t.equal(statSync(asset).ino, statSync(commons).ino, 'hard-linked into <site>/assets/plugins/image, as the reference')
  t.same(await listDir(join(farm.data, 'commons', 'uploads')), [], 'no upload left behind')
  const served = await http(port, 'GET', `/assets/plugins/image/${MD5}.png`, A)
  t.equal(served.status, 200, 'the image is served back')
  t.equal(Buffer.from(served.body, 'latin1').length > 0, true)
  t.equal((await http(port, 'GET', `/assets/plugins/image/${MD5}.png`, B)).status, 404, 'not on another site')

  t.equal((await upload(B, b.cookie)).body, 'success', 'the same image on a second site')
  t.equal(statSync(commons).nlink, 3, 'one copy in the commons, linked into both sites')
  const gallery = await http(port, 'GET', '/plugin/image/gallery.html', A)
  t.equal(gallery.status, 200)
  t.match(gallery.body, `/assets/plugins/image/${MD5}.png`, "the gallery lists the site's images")
  t.match(gallery.body, 'Used in 1 other wiki in this farm')

  t.equal((await upload(A, a.cookie, 'not-an-md5.png')).status, 404, 'a name that is not <md5>.<ext> reaches no route')
  // The reference makes the folder at each site's start; a site that never uploaded has none,
  // and the plugin's gallery throws in a callback: that request is answered 500, nothing else.
  const missing = await http(port, 'GET', '/plugin/image/gallery.html', 'c.example')
  t.equal(missing.status, 500)
  t.equal(JSON.parse(missing.body).code, 'WIKIFARM_ERR_PLUGIN_FAILED')
  t.notOk(existsSync(join(farm.data, 'c.example')), 'reading created no folder')
  t.equal((await http(port, 'GET', '/plugin/image/gallery.html', A)).status, 200, 'the plugin serves on')
})

t.test('image, assets and plugmatic are each launched once after requests to 50 sites', async (t) => {
  const farm = await legacyFarm(t)
  const port = await listenLocal(farm)
  for (let i = 0; i < 50; i++) {
    const host = `site${i}.example`
    t.equal((await http(port, 'GET', '/plugin/assets/list', host)).status, 200)
    t.equal((await http(port, 'GET', '/plugin/plugmatic/sitemap.json', host)).status, 200)
    t.equal((await http(port, 'POST', `/plugins/image/upload/${MD5}.png`, host)).status, 403)
  }
  const admin = await adminLogin(t, farm, A)
  const response = await farm.app.inject({ url: '/system/status.json', headers: { host: A, cookie: admin } })
  const status = response.json() as { legacy: LegacyStatus[] }
  for (const name of ['assets', 'image', 'plugmatic']) {
    t.match(status.legacy.find((p) => p.name === name), { state: 'running', launches: 1, mode: 'shared' },
      `${name}: one launch`)
  }
  t.match(status.legacy.find((p) => p.name === 'txtzyme'), { state: 'disabled' },
    "wiki-plugin-txtzyme's server part gives way to the built-in")
  const html = await farm.app.inject({ url: '/system/status.html', headers: { host: A, cookie: admin } })
  t.match(html.body, 'legacy wiki-plugin-image@0.8', 'the status page lists legacy plugins')
})
