// Launch once: with 50 sites and 3 plugins, each plugin is launched exactly once, at kernel
// start, before any site is visited, and one instance serves REST and websocket requests
// for every site.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { listenLocal, startFarm } from './fixtures/test-farm.js'
import { eventually, openWs } from './fixtures/ws-client.js'
import { probe, resetProbe } from './fixtures/plugin-probe.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-three/', import.meta.url))
const NAMES = ['alpha', 'beta', 'gamma']
const HOSTS = Array.from({ length: 50 }, (_, i) => `site${i}.example`)

t.test('50 sites, 3 plugins: each launched exactly once, before any request', async (t) => {
  resetProbe()
  const farm = await startFarm(t, { farm: true }, undefined, { builtinPluginsDir: PLUGINS })
  t.same(probe.launches, { alpha: 1, beta: 1, gamma: 1 }, 'launched once each by createKernel')
  t.same(probe.sitesAtLaunch, { alpha: [[]], beta: [[]], gamma: [[]] }, 'no site was open at launch')
  t.equal(farm.kernel.sites.openCount, 0, 'launching visited no site')
  t.same(farm.kernel.plugins.statuses().map((s) => [s.name, s.state, s.launches]), NAMES.map((n) => [n, 'running', 1]))

  const port = await listenLocal(farm)
  for (const host of HOSTS) {
    const answers = await Promise.all(
      NAMES.map((name) => farm.app.inject({ url: `/plugin/${name}/hello`, headers: { host } })),
    )
    t.same(answers.map((a) => a.statusCode), [200, 200, 200])
    t.same(
      answers.map((a) => [a.json().plugin, a.json().site, a.json().launches]),
      NAMES.map((n) => [n, host, 1]),
      `REST on ${host}`,
    )
  }
  const clients = await Promise.all(
    HOSTS.flatMap((host) => NAMES.map((name) => openWs(port, `/plugin/${name}/`, host))),
  )
  const greetings = await Promise.all(clients.map((c) => c.nextJson<{ plugin: string; site: string }>()))
  t.same(greetings.map((g) => `${g.plugin}@${g.site}`), HOSTS.flatMap((host) => NAMES.map((name) => `${name}@${host}`)),
    'every websocket reached its plugin with its own site')
  t.same(probe.connects, { alpha: 50, beta: 50, gamma: 50 })
  t.equal(farm.kernel.sockets.size, 150, 'the kernel holds all 150 connections')
  for (const c of clients) c.ws.close()
  await Promise.all(clients.map((c) => c.waitClose()))
  await eventually(() => farm.kernel.sockets.size === 0)
  t.equal(farm.kernel.sockets.size, 0, 'and lets go of them when they close')

  t.same(
    probe.launches,
    { alpha: 1, beta: 1, gamma: 1 },
    'still once each after 150 REST requests and 150 websockets on 50 sites',
  )
  t.equal(farm.kernel.sites.openCount, 50)
})

t.test('another kernel in the same process launches its own instances, once each', async (t) => {
  resetProbe()
  const farm = await startFarm(t, { farm: true }, undefined, { builtinPluginsDir: PLUGINS })
  t.same(farm.kernel.plugins.statuses().map((s) => s.state), ['running', 'running', 'running'])
  t.match(farm.kernel.plugins.statuses()[0], { launchedAt: String, reason: null })
  t.same(probe.launches, { alpha: 1, beta: 1, gamma: 1 }, 'once each')
})
