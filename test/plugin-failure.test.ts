// Failure is contained: a plugin that throws, rejects or hangs at launch is marked failed
// with its reason while the farm and the other plugins serve; its REST routes answer 503
// {error, code, reason} and its sockets close with 1013 and the reason. A handler that
// throws answers 500 and the plugin keeps serving; one that hangs answers 504. An event
// listener that throws or rejects touches neither the request that caused the event nor
// the other listeners.
import t, { type Test } from 'tap'
import { fileURLToPath } from 'node:url'
import { createKernel, type Kernel } from '../core/kernel.js'
import { DEFAULTS } from '../core/farm-config.js'
import { COOKIE_SECRET, claim, listenLocal, putAction, startFarm } from './fixtures/test-farm.js'
import { eventually, openWs } from './fixtures/ws-client.js'
import { probe, resetProbe } from './fixtures/plugin-probe.js'
import { REASON as UNWELL_REASON } from './fixtures/plugins-failure/unwell/index.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-failure/', import.meta.url))
const HOST = 'a.example'
const LAUNCH_TIMEOUT = 150
const HANDLER_TIMEOUT = 100

async function failureFarm(t: Test) {
  resetProbe()
  const started = Date.now()
  const farm = await startFarm(t, {
    farm: true, pluginLaunchTimeoutMs: LAUNCH_TIMEOUT, pluginHandlerTimeoutMs: HANDLER_TIMEOUT,
  }, undefined, { builtinPluginsDir: PLUGINS })
  return { ...farm, bootMs: Date.now() - started }
}

type Farm = Awaited<ReturnType<typeof failureFarm>>

const get = (farm: Farm, url: string) => farm.app.inject({ url, headers: { host: HOST } })
const state = (farm: Farm, name: string) => farm.kernel.plugins.statuses().find((s) => s.name === name)

t.test('throwing, rejecting and hanging launches are failed with their reasons; the farm serves', async (t) => {
  const farm = await failureFarm(t)
  t.ok(farm.bootMs < LAUNCH_TIMEOUT + 1500, `a hanging launch holds the boot only for its timeout (${farm.bootMs} ms)`)
  t.match(state(farm, 'thrower'), {
    state: 'failed',
    reason: 'thrower: the device exploded',
    launchedAt: null,
    launches: 0,
  })
  t.match(state(farm, 'rejecter'), { state: 'failed', reason: 'rejecter: no config file' })
  t.match(state(farm, 'hanger'), { state: 'failed', reason: `launch did not finish within ${LAUNCH_TIMEOUT} ms` })
  t.match(state(farm, 'unwell'), { state: 'unavailable', reason: UNWELL_REASON })
  for (const name of ['healthy', 'grumpy', 'listener']) t.equal(state(farm, name)?.state, 'running', `${name} runs`)

  for (const name of ['thrower', 'rejecter', 'hanger', 'unwell']) {
    for (const url of [`/plugin/${name}/`, `/plugin/${name}/anything/at/all`]) {
      const response = await get(farm, url)
      t.equal(response.statusCode, 503, `${url} is 503`)
      t.same(response.json(), {
        error: `Plugin ${name} is unavailable`,
        code: 'WIKIFARM_ERR_PLUGIN_UNAVAILABLE',
        reason: state(farm, name)?.reason,
      })
    }
  }
  t.same((await get(farm, '/plugin/healthy/ok')).json(), { ok: true, site: HOST }, 'the other plugins serve')
  t.equal((await get(farm, '/welcome-visitors.json')).statusCode, 200, 'and so does the farm')

  const port = await listenLocal(farm)
  for (const name of ['thrower', 'rejecter', 'hanger']) {
    const client = await openWs(port, `/plugin/${name}/`, HOST)
    t.same(
      await client.waitClose(),
      { code: 1013, reason: `${name} unavailable: ${state(farm, name)?.reason}` },
      `${name}'s socket closes with 1013 and the reason`,
    )
  }
  const unwell = await openWs(port, '/plugin/unwell/', HOST)
  const closed = await unwell.waitClose()
  t.equal(closed.code, 1013, 'a reason too long for a close frame still closes with 1013')
  t.ok(Buffer.byteLength(closed.reason) <= 123, 'with the reason cut to fit')
  t.ok(
    `unwell unavailable: ${UNWELL_REASON}`.startsWith(closed.reason) && closed.reason.length > 20,
    'cut, not replaced',
  )
  t.equal(farm.kernel.sockets.size, 0, 'no connection was handed to a failed plugin')
})

t.test('a launch that finishes after its timeout is closed, and stays failed', async (t) => {
  const farm = await failureFarm(t)
  t.equal(state(farm, 'laggard')?.state, 'failed')
  await eventually(() => probe.log.includes('close:laggard'), 2000, 'the late instance is closed')
  t.same(probe.log.filter((l) => l.includes('laggard')), ['laggard:launched', 'close:laggard'])
  t.equal(state(farm, 'laggard')?.state, 'failed', 'its late instance is not put in service')
  t.equal((await get(farm, '/plugin/laggard/ok')).statusCode, 503)
})

t.test('a handler that throws answers 500 and the plugin keeps serving; one that hangs answers 504', async (t) => {
  const farm = await failureFarm(t)
  for (const url of [
    '/plugin/healthy/throws',
    '/plugin/healthy/throws-sync',
    '/plugin/healthy/bad-reply',
    '/plugin/healthy/not-an-error',
  ]) {
    const response = await get(farm, url)
    t.equal(response.statusCode, 500, url)
    t.same(response.json(), {
      error: 'Plugin healthy failed to handle the request',
      code: 'WIKIFARM_ERR_PLUGIN_FAILED',
    })
    t.notMatch(response.body, /exploded|not even async|not a number|all fine/, "the plugin's error stays in the log")
    t.equal((await get(farm, '/plugin/healthy/ok')).statusCode, 200, 'and the plugin serves the next request')
  }
  const started = Date.now()
  const hung = await get(farm, '/plugin/healthy/hangs')
  const waited = Date.now() - started
  t.equal(hung.statusCode, 504)
  t.same(hung.json(), { error: 'Plugin healthy did not answer in time', code: 'WIKIFARM_ERR_PLUGIN_TIMEOUT' })
  t.ok(waited >= HANDLER_TIMEOUT - 5 && waited < HANDLER_TIMEOUT + 1000, `after the handler timeout (${waited} ms)`)
  t.equal((await get(farm, '/plugin/healthy/ok')).statusCode, 200)

  const teapot = await get(farm, '/plugin/healthy/teapot')
  t.equal(teapot.statusCode, 418, 'a PluginHttpError keeps its status')
  t.same(teapot.json(), { error: 'I am a teapot', code: 'HEALTHY_TEAPOT' })
  const busy = await get(farm, '/plugin/healthy/busy')
  t.equal(busy.statusCode, 503, 'PluginUnavailable from a handler is a 503')
  t.same(busy.json(), {
    error: 'Plugin healthy is unavailable',
    code: 'WIKIFARM_ERR_PLUGIN_UNAVAILABLE',
    reason: 'device busy',
  })
  t.equal(state(farm, 'healthy')?.state, 'running', 'none of this stops the plugin')
})

t.test('websocket handlers that throw: an error message, or a close; the plugin serves on', async (t) => {
  const farm = await failureFarm(t)
  const port = await listenLocal(farm)
  const client = await openWs(port, '/plugin/healthy/', HOST)
  client.send({ type: 'crash', id: 'c1' })
  const failed = await client.nextJson()
  t.same(failed, {
    type: 'error',
    id: 'c1',
    data: { error: 'the plugin failed to handle this message', code: 'WIKIFARM_ERR_PLUGIN_FAILED' },
  })
  t.same(
    Object.keys((failed as { data: object }).data),
    ['error', 'code'],
    'the error envelope words it as HTTP does: { error, code }',
  )
  client.send({ type: 'fine', id: 'f1' })
  t.same(await client.nextJson(), { type: 'ok', id: 'f1' }, 'the connection stays open and served')

  const refused = await openWs(port, '/plugin/healthy/refuse', HOST)
  t.same(await refused.waitClose(), { code: 1011, reason: 'the plugin failed to accept the connection' })
  const busy = await openWs(port, '/plugin/healthy/busy', HOST)
  t.same(await busy.waitClose(), { code: 1013, reason: 'device busy' })

  client.send({ type: 'fine', id: 'f2' })
  t.same(await client.nextJson(), { type: 'ok', id: 'f2' }, 'other connections are untouched')
  client.ws.close()
  await client.waitClose()

  const stuck = await openWs(port, '/plugin/healthy/', HOST)
  stuck.send({ type: 'hang' })
  await eventually(() => farm.kernel.sockets.size === 1)
  stuck.ws.close()
  await stuck.waitClose()
  await eventually(() => farm.kernel.sockets.size === 0, 1000, 'the connection is let go')
  t.equal(farm.kernel.sockets.size, 0, 'a handler that never returns does not keep its closed connection counted')
  const fresh = await openWs(port, '/plugin/healthy/', HOST)
  fresh.send({ type: 'fine', id: 'f3' })
  t.same(await fresh.nextJson(), { type: 'ok', id: 'f3' }, 'and the plugin serves new connections')
  fresh.ws.close()
  await fresh.waitClose()
})

t.test('event listeners that throw or reject affect neither the request nor other listeners', async (t) => {
  const farm = await failureFarm(t)
  const owner = await claim(t, farm.app, HOST)
  const response = await putAction(farm.app, HOST, owner.cookie, 'evented', {
    type: 'create',
    item: { title: 'Evented' },
    date: 1,
  })
  t.equal(response.statusCode, 200, 'the edit succeeds')
  t.equal(response.body, 'ok')
  const page = await get(farm, '/evented.json')
  t.equal(page.json().title, 'Evented', 'and is saved')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(
    probe.heard,
    {
      healthy: [`page.changed:${HOST}/evented`],
      grumpy: [`page.changed:${HOST}/evented`],
      listener: [`page.changed:${HOST}/evented`],
    },
    'every listener heard the event, the one after the failing ones too',
  )

  const again = await putAction(farm.app, HOST, owner.cookie, 'evented', {
    type: 'add', id: '00000000000000a1', item: { type: 'paragraph', id: '00000000000000a1', text: 'more' },
  })
  t.equal(again.statusCode, 200, 'and the next edit too')
  t.equal(probe.heard.listener?.length, 2)
  for (const name of ['healthy', 'grumpy', 'listener'])
    t.equal(state(farm, name)?.state, 'running', `${name} still runs`)
})

t.test('failures are logged under the plugin\'s name', async (t) => {
  resetProbe()
  const lines: Record<string, unknown>[] = []
  const stream = { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } }
  let kernel: Kernel | undefined
  t.teardown(async () => { await kernel?.close() })
  kernel = await createKernel({
    ...DEFAULTS, data: t.testdir(), farm: true, cookieSecret: COOKIE_SECRET, cookieSecretIsRandom: false,
    pluginLaunchTimeoutMs: LAUNCH_TIMEOUT, pluginHandlerTimeoutMs: HANDLER_TIMEOUT,
  }, { logger: { level: 'warn', stream }, builtinPluginsDir: PLUGINS })
  const app = kernel.app
  const owner = await claim(t, app, HOST)
  await putAction(app, HOST, owner.cookie, 'logged', { type: 'create', item: { title: 'Logged' }, date: 1 })
  await app.inject({ url: '/plugin/healthy/throws', headers: { host: HOST } })
  await eventually(() => lines.some((l) => l.owner === 'grumpy'), 1000, 'the rejection is logged')

  t.match(
    lines.find((l) => l.plugin === 'thrower'),
    { msg: 'plugin failed', reason: 'thrower: the device exploded' },
    'a failed launch',
  )
  t.match(lines.find((l) => l.plugin === 'unwell'), { msg: 'plugin unavailable' }, 'an unavailable plugin')
  t.match(
    lines.find((l) => l.owner === 'healthy'),
    {
      event: 'page.changed',
      msg: 'event listener of healthy failed on page.changed',
      err: { message: 'listener exploded' },
    },
  )
  t.match(
    lines.find((l) => l.owner === 'grumpy'),
    {
      event: 'page.changed',
      msg: 'event listener of grumpy failed on page.changed',
      err: { message: 'listener rejected' },
    },
  )
  t.match(
    lines.find((l) => l.msg === 'plugin handler failed'),
    { plugin: 'healthy', site: HOST, err: { message: 'handler exploded' } },
    'a failed handler',
  )
})
