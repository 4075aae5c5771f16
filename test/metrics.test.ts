// Prometheus metrics on their own port (core/metrics/): /metrics there, in the text format, with
// figures that move as the farm works (page reads by route, open sites, websockets per plugin,
// plugin restarts, store errors); the sites' port has no /metrics; hostile URLs and Hosts add no
// series; the listener exists only when --metricsPort is set, on 127.0.0.1 unless told.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { listenLocal, startFarm, type TestFarm } from './fixtures/test-farm.js'
import { httpCall } from './fixtures/http-client.js'
import { openWs } from './fixtures/ws-client.js'
import { resetProbe } from './fixtures/plugin-probe.js'
import { ADMIN_SECRET, adminLogin } from './fixtures/admin.js'
import { parseCli } from '../core/boot/cli.js'
import { scrape, value, type Sample } from './fixtures/prometheus.js'
import type { FarmConfig } from '../core/farm-config.js'

const SOCKET_PLUGINS = fileURLToPath(new URL('./fixtures/plugins-sockets/', import.meta.url))
const RELAUNCH_PLUGINS = fileURLToPath(new URL('./fixtures/plugins-relaunch/', import.meta.url))
const BIN = fileURLToPath(new URL('../../bin/wikifarm.js', import.meta.url))
const HOST = 'a.example'

async function metricsFarm(t: Test, overrides: Partial<FarmConfig> = {}, pluginsDir = SOCKET_PLUGINS) {
  resetProbe()
  const farm = await startFarm(t, { farm: true, metricsPort: 0, ...overrides }, undefined,
    { builtinPluginsDir: pluginsDir })
  const port = await listenLocal(farm)
  const address = farm.app.metrics.address()
  if (address === null) throw new Error('metrics are not listening')
  return { ...farm, port, metricsPort: Number(new URL(address).port), address }
}

const read = (farm: { port: number }, path: string, host = HOST) => httpCall(farm.port, { path, headers: { host } })

t.test('/metrics on the metrics port: the text format, every named family', async (t) => {
  const farm = await metricsFarm(t)
  const response = await httpCall(farm.metricsPort, { path: '/metrics' })
  t.equal(response.status, 200)
  t.match(response.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  for (const family of [
    'wikifarm_http_requests_total', 'wikifarm_http_request_duration_seconds', 'wikifarm_sites_open',
    'wikifarm_plugin_sockets', 'wikifarm_plugin_state', 'wikifarm_plugin_restarts_total',
    'wikifarm_store_operation_duration_seconds', 'wikifarm_store_errors_total', 'wikifarm_node_role',
    'process_cpu_user_seconds_total', 'nodejs_eventloop_lag_seconds',
  ]) t.match(response.body, `# TYPE ${family} `, `${family} is exposed`)
  const { samples } = await scrape(farm)
  t.equal(value(samples, 'wikifarm_node_role', { role: 'single' }), 1, 'one node: role "single"')
  t.equal(value(samples, 'wikifarm_plugin_state', { plugin: 'wire', state: 'running' }), 1)
  t.equal(value(samples, 'wikifarm_plugin_state', { plugin: 'wire', state: 'failed' }), 0)
  farm.app.metrics.setNodeRole('owner')
  const after = (await scrape(farm)).samples
  t.equal(value(after, 'wikifarm_node_role', { role: 'owner' }), 1, 'the role others set is exposed')
  t.equal(value(after, 'wikifarm_node_role', { role: 'single' }), undefined, 'and replaces the old one')
  t.throws(() => farm.app.metrics.setNodeRole('Bad Role{}'), /node role must match/)
  t.equal((await httpCall(farm.metricsPort, { path: '/' })).status, 404, 'nothing else there')
  t.equal((await httpCall(farm.metricsPort, { path: '/welcome-visitors.json', headers: { host: HOST } })).status, 404,
    'and no site: the metrics port is not the site router')
  t.equal((await httpCall(farm.metricsPort, { method: 'POST', path: '/metrics' })).status, 405)
})

t.test('a page read counts under its route pattern; opening a site moves open sites', async (t) => {
  const farm = await metricsFarm(t)
  const before = (await scrape(farm)).samples
  t.equal(value(before, 'wikifarm_sites_open'), 0, 'no site open before a visit')
  const labels = { method: 'GET', route: '/:slug.json', status: '200' }
  t.equal(value(before, 'wikifarm_http_requests_total', labels), undefined, 'no read yet')
  t.equal((await read(farm, '/welcome-visitors.json')).status, 200)
  const once = (await scrape(farm)).samples
  t.equal(value(once, 'wikifarm_http_requests_total', labels), 1, 'one read, counted once')
  t.equal(value(once, 'wikifarm_sites_open'), 1, 'the site is open')
  t.equal(value(once, 'wikifarm_http_request_duration_seconds_count', { method: 'GET', route: '/:slug.json' }), 1)
  t.equal(value(once, 'wikifarm_http_request_duration_seconds_bucket',
    { method: 'GET', route: '/:slug.json', le: '+Inf' }), 1)
  t.ok((value(once, 'wikifarm_store_operation_duration_seconds_count', { store: 'file', operation: 'getPage' }) ?? 0)
    >= 1, 'the store read is timed')
  await read(farm, '/welcome-visitors.json')
  await read(farm, '/other-page.json')
  await read(farm, '/welcome-visitors.json', 'b.example')
  const more = (await scrape(farm)).samples
  t.equal(value(more, 'wikifarm_http_requests_total', labels), 3, 'reads of any page of any site share the route')
  t.equal(value(more, 'wikifarm_http_requests_total', { ...labels, status: '404' }), 1, 'the missing page')
  t.equal(value(more, 'wikifarm_sites_open'), 2)
  t.equal((await httpCall(farm.port, { method: 'HEAD', path: '/welcome-visitors.json', headers: { host: HOST } }))
    .status, 200)
  t.equal(value((await scrape(farm)).samples, 'wikifarm_http_requests_total',
    { method: 'HEAD', route: '/:slug.json', status: '200' }), 1, 'HEAD counted apart, once')
})

t.test('the sites\' port has no /metrics: it answers as for any unknown path', async (t) => {
  const farm = await metricsFarm(t)
  const metrics = await read(farm, '/metrics')
  const unknown = await read(farm, '/no-such-thing')
  t.equal(metrics.status, unknown.status)
  t.equal(metrics.status, 404)
  t.equal(JSON.parse(metrics.body).code, JSON.parse(unknown.body).code)
  t.notMatch(metrics.body, 'wikifarm_')
})

t.test('hostile URLs and Hosts add no label value', async (t) => {
  const farm = await metricsFarm(t, { allowed: [HOST] })
  const hostile = (n: number) => [
    `/x${n}-${'a'.repeat(n % 50)}`, `/${n}.json`, `/view/p${n}`, `/plugin/nope${n}/x`, `/%ff${n}`,
    `/system/${n}`, `/${n}/${n}/${n}`, `/a.json?${n}=${n}`,
  ]
  const send = async (round: number) => {
    for (let i = 0; i < 30; i++) {
      const n = round * 1000 + i
      for (const path of hostile(n)) await read(farm, path, i % 2 ? `h${n}.evil.example` : HOST)
      await httpCall(farm.port, { method: 'PROPFIND', path: `/q${n}`, headers: { host: HOST } })
    }
  }
  await send(1)
  const first = await scrape(farm)
  await send(2)
  const second = await scrape(farm)
  const series = (s: Sample[]) => s.filter((x) => x.name.startsWith('wikifarm_http_'))
    .map((x) => `${x.name}${JSON.stringify(x.labels)}`).sort()
  t.same(series(second.samples), series(first.samples), 'a second batch of new URLs and Hosts: the same series')
  const routes = new Set(first.samples.filter((x) => x.labels.route !== undefined).map((x) => x.labels.route))
  t.ok(routes.has('unmatched'), 'unmatched requests share one label')
  t.ok((value(first.samples, 'wikifarm_http_requests_total', { route: '/:slug.json', status: '404' }) ?? 0) >= 15,
    'a read refused for its unknown Host counts under the route it matched')
  for (const route of routes) t.notMatch(route, /\d{4}|evil/, `${route}: a pattern, not a URL`)
  t.notMatch(second.text, /evil\.example|x1000|q2001/, 'no Host, path or slug sent appears anywhere')
  const methods = new Set(first.samples.map((x) => x.labels.method).filter(Boolean))
  for (const method of methods) t.match(method, /^(GET|HEAD|PROPFIND|OTHER)$/)
})

t.test('a websocket to a plugin moves its socket count', async (t) => {
  const farm = await metricsFarm(t)
  t.equal(value((await scrape(farm)).samples, 'wikifarm_plugin_sockets', { plugin: 'wire' }), 0)
  const a = await openWs(farm.port, '/plugin/wire/', HOST)
  const b = await openWs(farm.port, '/plugin/wire/', 'b.example')
  await a.nextJson()
  await b.nextJson()
  t.equal(value((await scrape(farm)).samples, 'wikifarm_plugin_sockets', { plugin: 'wire' }), 2, 'two open')
  a.ws.close()
  await a.closed
  const deadline = Date.now() + 2000
  let open = 2
  while (open !== 1 && Date.now() < deadline) {
    open = value((await scrape(farm)).samples, 'wikifarm_plugin_sockets', { plugin: 'wire' }) ?? -1
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.equal(open, 1, 'one closed')
})

t.test('a plugin restart moves its restarts counter', async (t) => {
  const farm = await metricsFarm(t, { admin: ADMIN_SECRET }, RELAUNCH_PLUGINS)
  t.equal(value((await scrape(farm)).samples, 'wikifarm_plugin_restarts_total', { plugin: 'steady' }), 0)
  const cookie = await adminLogin(t, farm as TestFarm, HOST)
  const relaunch = await farm.app.inject({
    method: 'POST', url: '/system/plugins/steady/relaunch', headers: { host: HOST, cookie },
  })
  t.equal(relaunch.statusCode, 200)
  const samples = (await scrape(farm)).samples
  t.equal(value(samples, 'wikifarm_plugin_restarts_total', { plugin: 'steady' }), 1)
  t.equal(value(samples, 'wikifarm_plugin_state', { plugin: 'steady', state: 'running' }), 1)
})

t.test('a store error is counted by store, operation and code', async (t) => {
  const farm = await metricsFarm(t)
  t.equal((await read(farm, '/welcome-visitors.json')).status, 200, 'the site exists')
  await mkdir(join(farm.data, HOST, 'pages'), { recursive: true })
  await writeFile(join(farm.data, HOST, 'pages', 'torn'), '{"title": "torn", "sto')
  const torn = await read(farm, '/torn.json')
  t.equal(torn.status, 500)
  t.equal(JSON.parse(torn.body).code, 'WIKIFARM_ERR_STORE')
  const samples = (await scrape(farm)).samples
  t.equal(value(samples, 'wikifarm_store_errors_total',
    { store: 'file', operation: 'getPage', code: 'WIKIFARM_ERR_STORE' }), 1)
  t.equal(value(samples, 'wikifarm_http_requests_total', { route: '/:slug.json', status: '500' }), 1)
})

t.test('metrics off (the default): no listener', async (t) => {
  const servers = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length
  const before = servers()
  const farm = await startFarm(t, { farm: true })
  await listenLocal(farm)
  t.equal(servers(), before + 1, 'one listener: the sites\' port')
  t.equal(farm.app.metrics.enabled, false)
  t.equal(farm.app.metrics.address(), null)
  t.doesNotThrow(() => farm.app.metrics.setNodeRole('member'), 'setting the role is harmless')

  const on = await metricsFarm(t)
  t.equal(servers(), before + 3, 'with metrics: two more, the sites\' port and the metrics port')
  t.match(on.address, /^http:\/\/127\.0\.0\.1:\d+$/, 'on 127.0.0.1 by default')
})

t.test('the flags: --metricsPort, --metricsHost, config key and environment', async (t) => {
  const cli = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
    const parsed = parseCli(argv, env)
    if (!('config' in parsed)) throw new Error('no config')
    return parsed.config
  }
  t.match(cli([]), { metricsPort: null, metricsHost: '127.0.0.1' }, 'off by default')
  t.match(cli(['--metricsPort', '9100']), { metricsPort: 9100, metricsHost: '127.0.0.1', host: '0.0.0.0' },
    'on this machine only, whatever the farm\'s host')
  t.match(cli(['--metricsPort', '9100', '--metricsHost', '0.0.0.0']), { metricsHost: '0.0.0.0' })
  t.match(cli([], { WIKIFARM_METRICS_PORT: '9101' }), { metricsPort: 9101 })
  const dir = t.testdir({ 'farm.json': JSON.stringify({ metricsPort: 9102, metricsHost: '10.0.0.1' }) })
  t.match(cli(['--config', join(dir, 'farm.json')]), { metricsPort: 9102, metricsHost: '10.0.0.1' })
  t.throws(() => cli(['--metricsPort', '70000']), /--metricsPort: must be a port number from 0 to 65535/)
  t.throws(() => cli(['--port', '9100', '--metricsPort', '9100']), /metricsPort: must differ from port/)

  const run = (args: string[]) => new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, '--data', t.testdir(), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
    child.on('exit', (code) => resolve({ code, stderr }))
  })
  for (const args of [['--metricsPort', 'abc'], ['--metricsPort', '-1'], ['--port', '8000', '--metricsPort', '8000']]) {
    const { code, stderr } = await run(args)
    t.equal(code, 2, `${args.join(' ')}: exit 2`)
    t.match(stderr, /^wikifarm: [^\n]*metricsPort[^\n]*\n$/, `${args.join(' ')}: one line naming the flag`)
  }
})

t.test('a metrics port in use stops the boot with a clear error', async (t) => {
  const first = await metricsFarm(t)
  const second = await startFarm(t, { farm: true, metricsPort: first.metricsPort })
  await t.rejects(second.app.listen({ port: 0, host: '127.0.0.1' }),
    {
      message: `metrics port ${first.metricsPort} on 127.0.0.1 is already in use`,
      code: 'WIKIFARM_ERR_METRICS_LISTEN',
    })
})

t.test('the real bin: --metricsPort 0 says where the metrics are, and they are there', async (t) => {
  const child = spawn(process.execPath, [BIN, '--data', t.testdir(), '--host', '127.0.0.1', '--port', '0',
    '--metricsPort', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WIKIFARM_LOG_LEVEL: 'info' } })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => { out += c })
  const deadline = Date.now() + 30_000
  const said = () => /Prometheus metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(out)
  while (!said() && child.exitCode === null && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 50))
  const match = said()
  if (!match) throw new Error(`no metrics line: ${out}`)
  const { samples } = await scrape({ metricsPort: Number(match[1]) })
  t.equal(value(samples, 'wikifarm_node_role', { role: 'single' }), 1)
  child.kill('SIGTERM')
  const [code] = await new Promise<[number | null]>((resolve) => child.on('exit', (c) => resolve([c])))
  t.equal(code, 0, 'and it closes cleanly with the farm')
})
