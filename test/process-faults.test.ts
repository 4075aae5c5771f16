// Errors no handler catches, from a plugin's timer, through the real bin: an unhandled
// rejection is logged naming the plugin and the farm keeps serving; an uncaught exception is
// logged as fatal naming the plugin, the farm closes gracefully (acknowledged writes on disk)
// and exits 1 for its supervisor to restart. The policy is in core/process-faults.ts and
// docs/security.md; blamePlugin's reading of stacks is checked directly too.
import { PACKAGE_ROOT } from '../core/package-info.js'
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { blamePlugin, describeFault, pluginSources } from '../core/boot/process-faults.js'
import { http } from './fixtures/test-farm.js'

const ROOT = PACKAGE_ROOT
const BIN = join(ROOT, 'bin/wikifarm.js')
const TIMEBOMB = fileURLToPath(new URL('./fixtures/plugins-faults/timebomb/index.js', import.meta.url))
const HOST = 'a.example'
const SECRET = 's'.repeat(40)

interface Run { child: ChildProcess; stdout: string; exited: Promise<number | null> }

function start(t: Test): { run: Run; data: string } {
  const dir = t.testdir({
    data: { [HOST]: { status: { 'owner.json': JSON.stringify({ name: 'o', friend: { secret: SECRET } }) } } },
  })
  const config = join(dir, 'farm.json')
  writeFileSync(config, JSON.stringify({
    farm: true, host: '127.0.0.1', port: 0, data: join(dir, 'data'), cookieSecret: 'c'.repeat(40), logLevel: 'info',
    plugins: { timebomb: { package: TIMEBOMB, isolation: 'none' } },
  }))
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WIKIFARM_')))
  const child = spawn(process.execPath, [BIN, '--config', config], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => { child.kill('SIGKILL') })
  const run: Run = { child, stdout: '', exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) }
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { run.stdout += chunk })
  return { run, data: join(dir, 'data') }
}

async function waitFor(run: Run, pattern: RegExp, ms = 20_000): Promise<RegExpMatchArray> {
  const until = Date.now() + ms
  for (;;) {
    const match = pattern.exec(run.stdout)
    if (match) return match
    if (Date.now() > until) throw new Error(`timed out waiting for ${pattern}: ${run.stdout}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function lines(run: Run): Array<Record<string, unknown>> {
  return run.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
}

t.test('an unhandled rejection in a plugin is logged under its name, and the farm keeps serving', async (t) => {
  const { run } = start(t)
  const port = Number((await waitFor(run, /on http:\/\/127\.0\.0\.1:(\d+)/))[1])
  t.equal(
    (await http(port, 'POST', '/plugin/timebomb/reject-later', HOST)).status,
    200,
    'the request that arms it succeeds',
  )
  await waitFor(run, /unhandled rejection/)
  t.match(
    lines(run).find((l) => String(l.msg).startsWith('unhandled rejection')),
    {
      level: 50,
      plugin: 'timebomb',
      code: 'WIKIFARM_ERR_UNHANDLED_REJECTION',
      msg: 'unhandled rejection in plugin timebomb: the farm keeps serving',
      err: { message: 'timebomb: a promise nobody awaited' },
    },
  )
  t.equal((await http(port, 'GET', '/welcome-visitors.json', HOST)).status, 200, 'the farm serves')
  t.equal((await http(port, 'GET', '/plugin/timebomb/ok', HOST)).status, 200, 'and so does the plugin')
  t.equal(run.child.exitCode, null, 'the process is alive')
  run.child.kill('SIGTERM')
  t.equal(await run.exited, 0)
})

t.test('an uncaught exception in a plugin\'s timer: logged under its name, graceful close, exit 1', async (t) => {
  const { run, data } = start(t)
  const port = Number((await waitFor(run, /on http:\/\/127\.0\.0\.1:(\d+)/))[1])
  const login = await http(port, 'POST', '/auth/reclaim/', HOST, {
    headers: { 'content-type': 'text/plain' },
    body: SECRET,
  })
  const cookie = String(login.headers['set-cookie']).split(';')[0] ?? ''
  const put = await http(port, 'PUT', '/page/before/action', HOST, {
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: `action=${encodeURIComponent(JSON.stringify({ type: 'create', item: { title: 'Before' }, date: 1 }))}`,
  })
  t.equal(put.status, 200, 'a write acknowledged before the fault')
  t.equal(
    (await http(port, 'POST', '/plugin/timebomb/throw-later', HOST)).status,
    200,
    'the request that arms it succeeds',
  )
  t.equal(await run.exited, 1, 'the process exits 1, for its supervisor to restart it')
  t.match(lines(run).find((l) => String(l.msg).startsWith('uncaught exception')), {
    level: 60, plugin: 'timebomb', code: 'WIKIFARM_ERR_UNCAUGHT_EXCEPTION',
    msg: 'uncaught exception in plugin timebomb: closing the farm', err: { message: 'timebomb: the timer exploded' },
  })
  t.match(run.stdout, /farm closed/, 'the farm closed gracefully first')
  t.equal(
    JSON.parse(readFileSync(join(data, HOST, 'pages', 'before'), 'utf8')).title,
    'Before',
    'the acknowledged write is on disk',
  )
  const sitemap = JSON.parse(readFileSync(join(data, HOST, 'status', 'sitemap.json'), 'utf8')) as { slug: string }[]
  t.same(sitemap.map((e) => e.slug), ['before'], 'and in the sitemap')
})

t.test('blamePlugin reads the stack for the nearest plugin frame', async (t) => {
  const sources = pluginSources([
    { name: 'txtzyme', grant: {} },
    { name: 'local', grant: { package: '/opt/plugins/local/index.js' } },
    { name: 'npm', grant: { package: '@example/wikifarm-npm' } },
  ], '/srv/wikifarm/plugins/')
  const withStack = (...frames: string[]) =>
    Object.assign(new Error('x'), { stack: ['Error: x', ...frames.map((f) => `    at ${f}`)].join('\n') })
  t.equal(
    blamePlugin(
      withStack(
        'Timeout._onTimeout (file:///srv/wikifarm/plugins/txtzyme/device.ts:10:5)',
        'listOnTimeout (node:internal/timers:594:17)',
      ),
      sources,
    ),
    'txtzyme',
  )
  t.equal(blamePlugin(withStack('f (/opt/plugins/local/lib/x.js:1:1)'), sources), 'local')
  t.equal(blamePlugin(withStack('g (/srv/app/node_modules/@example/wikifarm-npm/dist/index.js:3:9)'), sources), 'npm')
  t.equal(
    blamePlugin(
      withStack('h (/srv/wikifarm/core/kernel.ts:1:1)', 'i (/srv/wikifarm/plugins/txtzyme/index.ts:2:2)'),
      sources,
    ),
    'txtzyme',
    'the first plugin frame, below kernel frames',
  )
  t.equal(
    blamePlugin(withStack('h (/srv/wikifarm/core/kernel.ts:1:1)'), sources),
    null,
    'no plugin frame: unknown origin',
  )
  t.equal(blamePlugin('a string reason', sources), null, 'a rejection with no stack')
  t.equal(
    blamePlugin(withStack('j (/srv/wikifarm/plugins/txtzymeish/index.ts:1:1)'), sources),
    null,
    'a folder whose name only starts the same is another',
  )
  t.match(describeFault('rejection', 'a string reason', sources), {
    msg: 'unhandled rejection of unknown origin: the farm keeps serving',
    fields: { plugin: null },
  })
})

t.test('blamePlugin finds a built-in in its compiled folder and, with source maps, in its sources', async (t) => {
  const sources = pluginSources([{ name: 'txtzyme', grant: {} }], join(ROOT, 'dist', 'plugins') + '/')
  const withStack = (frame: string) => Object.assign(new Error('x'), { stack: `Error: x\n    at ${frame}` })
  t.equal(
    blamePlugin(withStack(`f (file://${join(ROOT, 'dist/plugins/txtzyme/device.js')}:1:1)`), sources),
    'txtzyme',
    'compiled',
  )
  t.equal(
    blamePlugin(withStack(`f (${join(ROOT, 'plugins/txtzyme/device.ts')}:1:1)`), sources),
    'txtzyme',
    'source-mapped',
  )
})
