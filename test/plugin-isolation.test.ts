// Containment: a plugin in a worker thread or a child process that throws from a timer, runs
// out of heap, spins forever, keeps crashing, reads files behind the kernel's back or abuses
// the channel ends only itself. The farm keeps serving every site and every other plugin, the
// faulty plugin's requests are answered (503), its sockets close with 1012 while it restarts,
// and one that keeps crashing stays failed, with its reason, until the admin relaunches it.
import t, { type Test } from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { http, listenLocal, putAction, claim, startFarm, type HttpResponse } from './fixtures/test-farm.js'
import { eventually, openWs } from './fixtures/ws-client.js'
import { ADMIN_SECRET, adminLogin } from './fixtures/admin.js'
import type { FarmConfig } from '../core/farm-config.js'
import type { IsolationMode } from '../core/plugin-host/isolation/channel.js'
import type { PluginStatus } from '../core/plugin-host/registry.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-isolation/', import.meta.url))
const THIRD = fileURLToPath(new URL('./fixtures/plugin-packages/third.js', import.meta.url))
const ALL = ['steady', 'bomb', 'hog', 'spinner', 'snoop', 'flaky', 'rogue']
const A = 'a.example'
const MODES: Exclude<IsolationMode, 'none'>[] = ['worker', 'process']

/** A farm with `names` isolated in `mode` and `steady` beside them in the kernel's own thread. */
async function isolatedFarm(t: Test, mode: IsolationMode, names: string[], extra: Partial<FarmConfig> = {},
  grants: FarmConfig['plugins'] = {}) {
  const plugins: FarmConfig['plugins'] = {}
  for (const name of ALL) {
    plugins[name] =
      name === 'steady'
        ? { isolation: 'none' }
        : names.includes(name)
          ? { isolation: mode, ...grants[name] }
          : { enabled: false }
  }
  const farm = await startFarm(
    t,
    { farm: true, admin: ADMIN_SECRET, plugins, pluginHeartbeatTimeoutMs: 800, pluginRestartLimit: 3, ...extra },
    undefined,
    { builtinPluginsDir: PLUGINS },
  )
  const port = await listenLocal(farm)
  const status = (name: string): PluginStatus => {
    const found = farm.kernel.plugins.statuses().find((s) => s.name === name)
    if (!found) throw new Error(`no plugin ${name}`)
    return found
  }
  const get = (path: string, host = A): Promise<HttpResponse> => http(port, 'GET', path, host)
  const post = (path: string, body: unknown, host = A): Promise<HttpResponse> =>
    http(port, 'POST', path, host, {
      headers: { 'content-type': 'application/json', origin: `http://${host}` },
      body: JSON.stringify(body),
    })
  return { ...farm, port, status, get, post }
}

type Farm = Awaited<ReturnType<typeof isolatedFarm>>

/** Everything else still answers: a core route, a page, and the in-process neighbour. */
async function farmServes(t: Test, farm: Farm, what: string): Promise<void> {
  t.equal((await farm.get('/system/sitemap.json')).status, 200, `${what}: core routes answer`)
  t.equal(
    (await farm.get('/plugin/steady/hello', 'b.example')).body,
    '{"steady":"b.example"}',
    `${what}: other plugins answer, on every site`,
  )
}

for (const mode of MODES) {
  t.test(
    `${mode}: a throw in a timer ends only that plugin; in-flight requests get 503, sockets 1012; it restarts`,
    async (t) => {
      const farm = await isolatedFarm(t, mode, ['bomb'])
      t.match(farm.status('bomb'), { state: 'running', isolation: mode, crashes: 0 })
      const first = JSON.parse((await farm.get('/plugin/bomb/hello')).body) as { bomb: string; pid: number }
      t.equal(first.bomb, A, 'it serves, with the site the kernel resolved')
      if (mode === 'process') t.not(first.pid, process.pid, 'in its own process')
      else t.equal(first.pid, process.pid, "in a thread of the kernel's process")
      const ws = await openWs(farm.port, '/plugin/bomb/', A)
      ws.send('hi')
      t.equal(await ws.next(), 'bomb:hi', 'its socket works across the boundary')

      const hanging = farm.get('/plugin/bomb/hang')
      await new Promise((resolve) => setTimeout(resolve, 100))
      t.equal((await farm.post('/plugin/bomb/arm', { ms: 50 })).status, 200)
      const answered = await hanging
      t.equal(answered.status, 503, 'the request in flight is answered, not left hanging')
      t.match(JSON.parse(answered.body), { code: 'WIKIFARM_ERR_PLUGIN_UNAVAILABLE', reason: /the bomb went off/ })
      t.match(await ws.waitClose(2000), { code: 1012 }, 'its sockets close with 1012: restarting')
      await farmServes(t, farm, 'while it is down')

      await eventually(() => farm.status('bomb').state === 'running', 5000, 'bomb restarted')
      t.match(farm.status('bomb'), { crashes: 1, launches: 2, reason: null })
      t.equal((await farm.get('/plugin/bomb/hello')).status, 200, 'and serves again')
    },
  )

  t.test(`${mode}: a plugin that exhausts its heap limit ends alone and restarts`, async (t) => {
    // A generous heartbeat: near its limit the plugin spends its time in GC, and on a loaded
    // machine that can look like a blocked loop first, which ends it just the same.
    const farm = await isolatedFarm(t, mode, ['hog'], { pluginHeartbeatTimeoutMs: 5000 }, { hog: { maxHeapMb: 32 } })
    const eat = await farm.post('/plugin/hog/eat', {})
    t.equal(eat.status, 503, 'the request that blew the heap is answered')
    t.match(JSON.parse(eat.body), { reason: /out of memory: heap limit of 32 MiB reached|event loop blocked/ })
    await farmServes(t, farm, 'after the heap blew')
    await eventually(() => farm.status('hog').state === 'running', 5000, 'hog restarted')
    t.match(farm.status('hog'), { crashes: 1, launches: 2 })
  })

  t.test(
    `${mode}: a spinning plugin is found by its heartbeat, ended and restarted; the farm never stalls`,
    async (t) => {
      const farm = await isolatedFarm(t, mode, ['spinner'], { pluginHeartbeatTimeoutMs: 2000 })
      t.equal((await farm.post('/plugin/spinner/spin', {})).status, 200)
      // While it spins (and before its heartbeat deadline), the kernel and the neighbour answer.
      await farmServes(t, farm, 'while it spins')
      t.equal(farm.status('spinner').state, 'running', 'answered while the spinner was still spinning, not found yet')
      await eventually(() => farm.status('spinner').state === 'restarting', 8000, 'spinner ended')
      t.match(farm.status('spinner').reason, /event loop blocked: no heartbeat answer for \d+ ms \(deadline 2000 ms\)/)
      const down = await farm.get('/plugin/spinner/hello')
      t.equal(down.status, 503, 'its routes answer 503 while it restarts')
      await eventually(() => farm.status('spinner').state === 'running', 5000, 'spinner restarted')
      t.equal((await farm.get('/plugin/spinner/hello')).status, 200)
    },
  )

  t.test(
    `${mode}: a plugin that keeps crashing stays failed with its last reason until the admin relaunches it`,
    async (t) => {
      const farm = await isolatedFarm(t, mode, ['flaky'])
      await eventually(() => farm.status('flaky').state === 'failed', 8000, 'flaky gave up')
      t.match(farm.status('flaky'), {
        crashes: 3,
        reason: /^crashed 3 times in a row; last: uncaught exception: flaky fell over/,
        nextRetryAt: null,
      })
      const launches = farm.status('flaky').launches
      await new Promise((resolve) => setTimeout(resolve, 600))
      t.equal(farm.status('flaky').launches, launches, 'no more restarts')
      const down = await farm.get('/plugin/flaky/hello')
      t.equal(down.status, 503)
      t.match(JSON.parse(down.body), { reason: /crashed 3 times/ })
      await farmServes(t, farm, 'with a failed plugin')
      const cookie = await adminLogin(t, farm, A)
      const relaunch = await farm.app.inject({
        method: 'POST',
        url: '/system/plugins/flaky/relaunch',
        headers: { host: A, cookie, origin: `http://${A}` },
      })
      t.equal(relaunch.statusCode, 200)
      t.match(
        relaunch.json(),
        { state: 'running', crashes: 0, launches: launches + 1 },
        'the admin brings it back, its count afresh',
      )
      const status = await farm.app.inject({ url: '/system/status.json', headers: { host: A, cookie } })
      t.match(
        status.json().plugins.find((p: PluginStatus) => p.name === 'flaky'),
        { isolation: mode },
        'the status view names the mode',
      )
    },
  )

  t.test(`${mode}: bad input on the channel is refused, timed out or cut off`, async (t) => {
    const farm = await isolatedFarm(t, mode, ['rogue'], { pluginHandlerTimeoutMs: 300 })
    await farm.get('/plugin/rogue/hello')
    t.same(
      JSON.parse((await farm.get('/plugin/rogue/twice')).body),
      { answer: 'first' },
      'the first answer to a call wins',
    )
    await eventually(() => farm.status('rogue').violations >= 2, 2000, 'the second and third answers are refused')
    t.same(JSON.parse((await farm.get('/plugin/rogue/malformed')).body), { sent: 7 })
    await eventually(() => farm.status('rogue').violations >= 9, 2000, 'each malformed message is refused')
    t.equal(farm.status('rogue').state, 'running', 'a few bad messages are refused, not fatal')
    const other = JSON.parse((await farm.get('/plugin/rogue/other-site')).body) as { ok: boolean; error: string }
    t.match(
      other,
      { ok: false, error: /has not been handed site "b\.example"/ },
      'a site plugin cannot act for a site it was not handed',
    )
    const never = await farm.get('/plugin/rogue/never')
    t.equal(never.status, 504, 'a call never answered times out')
    t.equal(JSON.parse(never.body).code, 'WIKIFARM_ERR_PLUGIN_TIMEOUT')

    const rss = process.memoryUsage().rss
    const flooding = farm.post('/plugin/rogue/flood', {})
    await farmServes(t, farm, 'during the flood')
    const flood = await flooding
    // The kernel drains the channel at its own pace. A worker's messages arrive as fast as it
    // posts them: past 50000 in a second it is ended as flooding. A child's come through a pipe
    // whose backlog waits in the child's memory; either way a slow kernel (a loaded machine)
    // may only see the plugin's answer late, after the 300 ms deadline.
    t.ok([200, 503, 504].includes(flood.status), `the flood is refused or absorbed (${flood.status})`)
    if (flood.status === 503)
      t.match(JSON.parse(flood.body), {
        reason: /flooding the kernel: more than 50000 messages in a second|event loop blocked/,
      })
    t.ok(process.memoryUsage().rss - rss < 256 * 1024 * 1024, 'the kernel\'s memory stays bounded')
    await farmServes(t, farm, 'after the flood')
    await eventually(() => farm.status('rogue').state === 'running', 5000, 'rogue runs again')
  })
}

t.test('process: a frame that does not decode, or claims more than the limit, ends the plugin unbuffered',
  async (t) => {
    const farm = await isolatedFarm(t, 'process', ['rogue'], { pluginHandlerTimeoutMs: 2000 })
    t.equal((await farm.get('/plugin/rogue/hello')).status, 200)
    const garbage = await farm.post('/plugin/rogue/garbage', {})
    t.equal(garbage.status, 503, 'the call in flight is answered: the plugin is gone')
    t.match(JSON.parse(garbage.body), { reason: /protocol violation: a frame of \d+ bytes does not decode/ })
    await farmServes(t, farm, 'after garbage')
    await eventually(async () => (await farm.get('/plugin/rogue/hello')).status === 200, 10_000, 'rogue runs again')

    const rss = process.memoryUsage().rss
    const huge = await farm.post('/plugin/rogue/huge', {})
    t.equal(huge.status, 503, 'a frame claiming 4 GiB ends the plugin from its length alone')
    t.match(JSON.parse(huge.body), { reason: /protocol violation: a frame of 4294967280 bytes passes the limit/ })
    t.ok(process.memoryUsage().rss - rss < 64 * 1024 * 1024, 'the kernel did not buffer it')
    await farmServes(t, farm, 'after a huge frame')
    await eventually(async () => (await farm.get('/plugin/rogue/hello')).status === 200, 10_000, 'rogue runs again')
  })

t.test('process: the permission model refuses a direct read of the data folder; a worker does not', async (t) => {
  for (const mode of MODES) {
    const farm = await isolatedFarm(t, mode, ['snoop'])
    const owner = await claim(t, farm.app, A)
    t.equal(
      (
        await putAction(farm.app, A, owner.cookie, 'secret-plans', {
          type: 'create',
          item: { title: 'Secret Plans', story: [] },
        })
      ).statusCode,
      200,
    )
    const secret = join(farm.data, 'secret.txt')
    writeFileSync(secret, 'the farm\'s own')
    const direct = JSON.parse((await farm.get(`/plugin/snoop/read?path=${encodeURIComponent(secret)}`)).body) as Record<
      string,
      unknown
    >
    const page = JSON.parse(
      (await farm.get(`/plugin/snoop/read?path=${encodeURIComponent(join(farm.data, A, 'pages', 'secret-plans'))}`))
        .body,
    ) as Record<string, unknown>
    if (mode === 'process') {
      t.same(direct, { refused: 'ERR_ACCESS_DENIED' }, 'process: a file of the data folder is refused')
      t.same(page, { refused: 'ERR_ACCESS_DENIED' }, 'process: and so is a page file')
    } else {
      t.same(direct, { read: 14 }, 'worker: a worker thread shares the process\'s file access (documented)')
    }
    t.same(
      JSON.parse((await farm.get('/plugin/snoop/page/secret-plans')).body),
      { title: 'Secret Plans' },
      `${mode}: through the kernel, its own site's page`,
    )
    await farm.kernel.close()
  }
})

t.test('defaults: a third-party plugin runs in a child process, a built-in in the kernel\'s thread', async (t) => {
  const farm = await startFarm(
    t,
    {
      farm: true,
      plugins: {
        third: { package: THIRD },
        steady: { enabled: false },
        ...Object.fromEntries(ALL.filter((n) => n !== 'steady').map((n) => [n, { enabled: false }])),
      },
    },
    undefined,
    { builtinPluginsDir: PLUGINS },
  )
  t.match(farm.kernel.plugins.get('third')?.status(), { state: 'running', isolation: 'process', pid: Number })
  const res = await farm.app.inject({ url: '/plugin/third/hi', headers: { host: A } })
  t.same(res.json(), { hi: A, trust: 'site' }, 'it serves from its child process, unchanged')
  const { defaultIsolation } = await import('../core/plugin-host/registry.js')
  t.equal(defaultIsolation(true), 'none')
  t.equal(defaultIsolation(false), 'process')
})

t.test('txtzyme refuses a worker thread, where serialport would abort the whole process', async (t) => {
  const builtins = fileURLToPath(new URL('../plugins/', import.meta.url))
  const farm = await startFarm(
    t,
    { farm: true, plugins: { linkmap: { enabled: false }, txtzyme: { isolation: 'worker' } } },
    undefined,
    { builtinPluginsDir: builtins },
  )
  t.match(farm.kernel.plugins.get('txtzyme')?.status(), {
    state: 'failed', launches: 0,
    // Its module loads serialport at its top level, now inside the worker: the guard refuses the
    // native addon before it can abort the farm, and says what to grant instead.
    reason: 'could not load: a native addon cannot load in a worker thread: grant isolation "process" and allowAddons',
  })
  t.equal(
    (await farm.app.inject({ url: '/system/sitemap.json', headers: { host: A } })).statusCode,
    200,
    'the farm serves',
  )
})

t.test('worker: a crash past the restart limit closes its sockets with 1011 and it stays failed', async (t) => {
  const farm = await isolatedFarm(t, 'worker', ['bomb'], { pluginRestartLimit: 1 })
  const ws = await openWs(farm.port, '/plugin/bomb/', A)
  t.equal((await farm.post('/plugin/bomb/arm', { ms: 10 })).status, 200)
  t.match(await ws.waitClose(2000), { code: 1011 }, 'no restart coming: 1011')
  t.match(farm.status('bomb'), {
    state: 'failed',
    crashes: 1,
    reason: /^crashed 1 time in a row; last: uncaught exception: the bomb went off/,
  })
  await farmServes(t, farm, 'with the plugin failed')
})
