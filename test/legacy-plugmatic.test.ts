// wiki-plugin-plugmatic (the real package, unchanged) under the legacy adapter: its status view
// works; its install (npm install in the farm's package folder) is refused by the farm in every
// spelling; its restart's process.exit stops only plugmatic, and the farm serves on.
import t from 'tap'
import { INSTALLED_LEGACY, claim, http, listenLocal, startFarm } from './fixtures/test-farm.js'
import { ADMIN_SECRET, adminLogin } from './fixtures/admin.js'
import type { LegacyStatus } from '../core/plugin-host/legacy/host.js'

const A = 'a.example'

t.test('plugmatic: status view; install refused; restart contained', async (t) => {
  const config = { farm: true, admin: ADMIN_SECRET }
  const farm = await startFarm(t, config, undefined, { legacyNodeModules: INSTALLED_LEGACY })
  const port = await listenLocal(farm)
  const owner = await claim(t, farm.app, A)
  const admin = await adminLogin(t, farm, A)
  const json = { 'content-type': 'application/json' }

  const view = await http(port, 'GET', '/plugin/plugmatic/plugins', A)
  t.equal(view.status, 200)
  const { install } = JSON.parse(view.body) as { install: { plugin: string; package: { name: string } }[] }
  for (const name of ['assets', 'image', 'plugmatic', 'graphviz']) {
    t.ok(install.some((row) => row.plugin === name && row.package.name === `wiki-plugin-${name}`), `lists ${name}`)
  }
  const sitemap = JSON.parse((await http(port, 'GET', '/plugin/plugmatic/sitemap.json', A)).body) as { slug: string }[]
  t.ok(sitemap.some((page) => page.slug === 'about-plugmatic-plugin'), "the plugins' about pages")

  const installBody = '{"plugin":"grep","version":"1.1.1"}'
  for (const path of ['install', 'INSTALL', 'install/', '%69nstall'].map((p) => `/plugin/plugmatic/${p}`)) {
    const response = await http(port, 'POST', path, A, { headers: { ...json, cookie: admin }, body: installBody })
    t.equal(response.status, 403, `${path}: refused even to the administrator`)
    t.equal(JSON.parse(response.body).code, 'WIKIFARM_ERR_LEGACY_REFUSED')
  }
  const byOwner = await http(port, 'POST', '/plugin/plugmatic/restart', A, { headers: { cookie: owner.cookie } })
  t.equal(byOwner.status, 403, "plugmatic's own rule: restart is the administrator's")
  t.match(JSON.parse(byOwner.body), { error: 'service requires admin user' })

  const restart = await http(port, 'POST', '/plugin/plugmatic/restart', A, { headers: { cookie: admin } })
  t.equal(restart.status, 200, 'plugmatic answered before calling process.exit(0)')
  const response = await farm.app.inject({ url: '/system/status.json', headers: { host: A, cookie: admin } })
  const status = response.json() as { legacy: LegacyStatus[] }
  t.match(status.legacy.find((p) => p.name === 'plugmatic'), { state: 'failed', reason: 'called process.exit(0)' })
  t.match(status.legacy.find((p) => p.name === 'image'), { state: 'running' }, 'the other legacy plugins run on')
  t.equal((await http(port, 'GET', '/plugin/plugmatic/plugins', A)).status, 503, 'plugmatic is stopped')
  t.equal((await http(port, 'GET', '/welcome-visitors.json', A)).status, 200, 'the farm serves on')
})
