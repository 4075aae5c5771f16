// Grants and validation at boot: the operator grants trust, sites and options; a plugin that
// asks for more than it was granted, speaks another API major or gets invalid options is
// refused with a clear reason while the farm serves; operator mistakes that would make
// routes ambiguous (bad or duplicate names, unknown plugins) stop createKernel.
import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { listenLocal, startFarm } from './fixtures/test-farm.js'
import { openWs } from './fixtures/ws-client.js'
import { probe, resetProbe } from './fixtures/plugin-probe.js'
import type { FarmConfig } from '../core/farm-config.js'

const fixture = (path: string) => fileURLToPath(new URL(`./fixtures/${path}`, import.meta.url))
const NO_BUILTINS = fixture('no-plugins-here/')
const pkg = (name: string) => fixture(`plugin-packages/${name}.js`)
const HOST = 'a.example'

// These fixtures report to the test through the shared probe, so they run in the kernel's
// thread; a third-party site plugin's default (a worker) is tested in plugin-isolation.test.ts.
function inProcess(plugins: FarmConfig['plugins']): FarmConfig['plugins'] {
  return Object.fromEntries(
    Object.entries(plugins).map(([name, grant]) => [name, { isolation: 'none' as const, ...grant }]),
  )
}

function farmWith(t: Test, plugins: FarmConfig['plugins'], builtinPluginsDir = NO_BUILTINS) {
  resetProbe()
  return startFarm(t, { farm: true, plugins: inProcess(plugins) }, undefined, { builtinPluginsDir })
}

function statusOf(farm: Awaited<ReturnType<typeof farmWith>>, name: string) {
  return farm.kernel.plugins.statuses().find((s) => s.name === name)
}

t.test('a third-party plugin loaded from `package` serves REST and websockets', async (t) => {
  const farm = await farmWith(t, { third: { package: pkg('third') } })
  t.match(statusOf(farm, 'third'), {
    state: 'running',
    source: `package ${pkg('third')}`,
    trust: 'site',
    requestedTrust: 'site',
  })
  t.equal(probe.launches.third, 1)
  const hi = await farm.app.inject({ url: '/plugin/third/hi', headers: { host: HOST } })
  t.same(hi.json(), { hi: HOST, trust: 'site' })
  const port = await listenLocal(farm)
  const client = await openWs(port, '/plugin/third/', HOST)
  client.send('hello')
  t.equal(await client.next(), 'third heard hello')
  client.ws.close()
  await client.waitClose()
})

t.test('farm trust requested, site trust granted: refused with a reason; the farm serves', async (t) => {
  const farm = await farmWith(t, { greedy: { package: pkg('greedy') }, third: { package: pkg('third') } })
  const status = statusOf(farm, 'greedy')
  t.match(status, { state: 'failed', requestedTrust: 'farm', trust: 'site', launches: 0, launchedAt: null })
  t.match(status?.reason, /requests farm trust/)
  t.match(status?.reason, /granted site trust/)
  t.match(status?.reason, /plugins\.greedy\.trust/, 'names the setting that grants it')
  const refused = await farm.app.inject({ url: '/plugin/greedy/trust', headers: { host: HOST } })
  t.equal(refused.statusCode, 503)
  t.same(refused.json(), {
    error: 'Plugin greedy is unavailable',
    code: 'WIKIFARM_ERR_PLUGIN_UNAVAILABLE',
    reason: status?.reason,
  })
  t.equal(
    (await farm.app.inject({ url: '/plugin/third/hi', headers: { host: HOST } })).statusCode,
    200,
    'other plugins serve',
  )
  t.equal(
    (await farm.app.inject({ url: '/welcome-visitors.json', headers: { host: HOST } })).statusCode,
    200,
    'and so do the pages',
  )

  const explicit = await farmWith(t, { greedy: { package: pkg('greedy'), trust: 'site' } })
  t.equal(statusOf(explicit, 'greedy')?.state, 'failed', 'an explicit site grant is refused the same way')

  const granted = await farmWith(t, { greedy: { package: pkg('greedy'), trust: 'farm' } })
  t.equal(statusOf(granted, 'greedy')?.state, 'running', 'granted farm trust, it runs')
  t.same((await granted.app.inject({ url: '/plugin/greedy/trust', headers: { host: HOST } })).json(), { trust: 'farm' })
})

t.test('an unsupported API major is refused, naming both versions', async (t) => {
  const farm = await farmWith(t, { future: { package: pkg('future') } })
  const status = statusOf(farm, 'future')
  t.match(status, { state: 'failed', apiVersion: 2, launches: 0 })
  t.match(status?.reason, /\bv2\b/, 'the plugin\'s version')
  t.match(status?.reason, /supports v1\b/, 'and the kernel\'s')
  t.equal((await farm.app.inject({ url: '/plugin/future/', headers: { host: HOST } })).statusCode, 503)
})

t.test('operator options are validated, with an error per field, and defaults filled in', async (t) => {
  const bad = await farmWith(t, {
    optioned: { package: pkg('optioned'), options: { port: 0, mode: 'turbo', label: 7 } },
  })
  const status = statusOf(bad, 'optioned')
  t.equal(status?.state, 'failed')
  t.match(status?.reason, /^invalid options: /)
  t.match(status?.reason, /\/port\b/, 'names port')
  t.match(status?.reason, /\/mode\b/, 'names mode')
  t.match(status?.reason, /\/label\b/, 'names label')

  const missing = await farmWith(t, { optioned: { package: pkg('optioned') } })
  const missingReason = statusOf(missing, 'optioned')?.reason
  t.match(missingReason, /\bport\b/, 'a missing required option is named')
  t.match(missingReason, /\bmode\b/, 'each of them')

  const good = await farmWith(t, { optioned: { package: pkg('optioned'), options: { port: 8080, mode: 'safe' } } })
  t.equal(statusOf(good, 'optioned')?.state, 'running')
  t.same((await good.app.inject({ url: '/plugin/optioned/options', headers: { host: HOST } })).json(),
    { port: 8080, mode: 'safe', label: 'unnamed' })
})

t.test('an option the plugin does not declare is refused, with the one that was meant', async (t) => {
  // The schema does not forbid extra keys: the kernel refuses them anyway.
  const typo = await farmWith(t, {
    optioned: { package: pkg('optioned'), options: { port: 8080, mode: 'safe', lable: 'x' } },
  })
  t.match(statusOf(typo, 'optioned'), {
    state: 'failed',
    reason: 'invalid options: unknown option "lable"; did you mean "label"?',
  })
  const far = await farmWith(t, {
    optioned: { package: pkg('optioned'), options: { port: 8080, mode: 'safe', colour: 'red' } },
  })
  t.match(statusOf(far, 'optioned'), {
    state: 'failed',
    reason: 'invalid options: unknown option "colour" (it takes port, mode, label)',
  })
  // A built-in plugin is held to the same rule: Txtzyme's "simulator" misspelt.
  const builtin = await startFarm(t, { farm: true, plugins: { txtzyme: { options: { simulater: true } } } }, undefined,
    { builtinPluginsDir: fileURLToPath(new URL('../plugins/', import.meta.url)) })
  t.match(builtin.kernel.plugins.statuses().find((s) => s.name === 'txtzyme'),
    { state: 'failed', reason: 'invalid options: unknown option "simulater"; did you mean "simulator"?' })
})

t.test('a package that cannot be loaded, or is not a plugin, is failed with a reason', async (t) => {
  const farm = await farmWith(t, {
    'not-a-plugin': { package: pkg('not-a-plugin') },
    missing: { package: fixture('plugin-packages/does-not-exist.js') },
    third: { package: pkg('third') },
  })
  t.match(statusOf(farm, 'not-a-plugin'), { state: 'failed', reason: /not a definePlugin\(\) result/ })
  t.match(statusOf(farm, 'missing'), { state: 'failed', reason: /^could not load: / })
  t.equal(statusOf(farm, 'third')?.state, 'running')
})

t.test('a plugin the operator disabled is not launched and not served', async (t) => {
  const farm = await farmWith(t, { third: { package: pkg('third'), enabled: false } })
  t.match(statusOf(farm, 'third'), { state: 'disabled', launches: 0 })
  t.equal(probe.launches.third, undefined, 'never launched')
  const response = await farm.app.inject({ url: '/plugin/third/hi', headers: { host: HOST } })
  t.equal(response.statusCode, 404)
  t.equal(response.json().code, 'WIKIFARM_ERR_PLUGIN_NOT_ENABLED')
})

t.test('operator mistakes stop createKernel with a clear message', async (t) => {
  const config = { code: 'WIKIFARM_ERR_PLUGIN_CONFIG' }
  await t.rejects(
    farmWith(t, { nosuch: {} }),
    { ...config, message: /plugins\.nosuch: no built-in plugin of that name;/ },
    'an unknown plugin',
  )
  await t.rejects(
    farmWith(t, { alhpa: {} }, fixture('plugins-three/')),
    { ...config, message: /plugins\.alhpa: no built-in plugin of that name \(did you mean "alpha"\?\)/ },
    'a typo of a built-in name',
  )
  await t.rejects(
    farmWith(t, { alpha: { package: fixture('plugins-three/alpha/index.js') } }, fixture('plugins-three/')),
    { ...config, message: /two plugins are named alpha/ },
    'a duplicate name',
  )
  await t.rejects(
    farmWith(t, { Bad_Name: { package: pkg('third') } }),
    { ...config, message: /plugin name "Bad_Name"/ },
    'a bad name in the config',
  )
  await t.rejects(
    farmWith(t, {}, fixture('plugins-badname/')),
    { ...config, message: /plugin name "Bad_Name"/ },
    'a bad built-in folder name',
  )
  await t.rejects(
    farmWith(t, { misnamed: { package: pkg('misnamed') } }),
    { ...config, message: /defines plugin "someone-else" but is configured as misnamed/ },
    'a package defining another name',
  )
})
