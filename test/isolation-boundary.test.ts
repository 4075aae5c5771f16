// Isolation is a process boundary, not a promise (docs/security.md, "Plugin isolation"):
// an isolated plugin's module is never imported in the farm's thread; in `process` mode it
// cannot signal, debug or renice the farm, read its environment or command line, start
// processes, threads or native code, or hold memory past its limit counted as RSS, Buffers
// included; in `worker` mode what can be neutralised is, and memory outside the V8 heap is
// bounded too. Each escape is tried for real by test/fixtures/plugins-boundary/.
import t, { type Test } from 'tap'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { http, listenLocal, startFarm } from './fixtures/test-farm.js'
import { eventually } from './fixtures/ws-client.js'
import type { FarmConfig, PluginGrant } from '../core/farm-config.js'
import type { IsolationMode } from '../core/plugin-host/isolation/channel.js'
import type { PluginStatus } from '../core/plugin-host/registry.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-boundary/', import.meta.url))
const STUCK = fileURLToPath(new URL('./fixtures/plugin-packages/stuck.js', import.meta.url))
const A = 'a.example'
const MODES: Exclude<IsolationMode, 'none'>[] = ['worker', 'process']
/** The data folder the nosy fixture looks into (its NOSY_DATA: importing it here would run it here). */
const NOSY_DATA = join(tmpdir(), 'wikifarm-nosy-data')
const OWNER_SECRET = 'nosy-owner-secret-of-b'
const ENV_SECRET = 'nosy-cookie-secret-in-the-farm-environment'

type Grants = Record<'nosy' | 'escape', PluginGrant> & Record<string, PluginGrant>

async function boundaryFarm(t: Test, grants: Grants, data?: string, extra: Partial<FarmConfig> = {}) {
  const config = { farm: true, plugins: grants, pluginHeartbeatTimeoutMs: 5000, ...extra }
  const farm = await startFarm(t, config, data, { builtinPluginsDir: PLUGINS })
  const port = await listenLocal(farm)
  const status = (name: string): PluginStatus => {
    const found = farm.kernel.plugins.statuses().find((s) => s.name === name)
    if (!found) throw new Error(`no plugin ${name}`)
    return found
  }
  const headers = { 'content-type': 'application/json', origin: `http://${A}` }
  const call = async (method: 'GET' | 'POST', path: string, body: unknown = {}): Promise<Answer> => {
    const res = method === 'GET' ? await http(port, 'GET', path, A)
      : await http(port, 'POST', path, A, { headers, body: JSON.stringify(body) })
    return { status: res.status, json: JSON.parse(res.body) as Record<string, unknown> }
  }
  return { ...farm, port, status, call }
}

interface Answer { status: number; json: Record<string, unknown> }

const nosyGlobal = globalThis as { wikifarmNosySaw?: unknown[] }

for (const mode of MODES) {
  t.test(`${mode}: the plugin's module never runs in the farm's thread; its top level learns no secret of the farm's`,
    async (t) => {
    // Another site's owner.json in the farm's data folder, and a secret in the farm's environment.
    rmSync(NOSY_DATA, { recursive: true, force: true })
    mkdirSync(join(NOSY_DATA, 'b.example', 'status'), { recursive: true })
    const owner = { name: 'b', friend: { secret: OWNER_SECRET } }
    writeFileSync(join(NOSY_DATA, 'b.example', 'status', 'owner.json'), JSON.stringify(owner))
    process.env.WIKIFARM_COOKIE_SECRET = ENV_SECRET
    t.teardown(() => {
      delete process.env.WIKIFARM_COOKIE_SECRET
      rmSync(NOSY_DATA, { recursive: true, force: true })
    })
    const farm = await boundaryFarm(t, { nosy: { isolation: mode }, escape: { enabled: false } }, NOSY_DATA)
    t.match(farm.status('nosy'), { state: 'running', isolation: mode, requestedTrust: 'site', apiVersion: 1 },
      'described and launched in its sandbox')
    t.equal(nosyGlobal.wikifarmNosySaw, undefined, 'its top-level code never ran in the farm\'s thread')

    const seen = (await farm.call('GET', '/plugin/nosy/seen')).json
    t.equal(seen.cookieSecret, null, 'the farm\'s environment is not the plugin\'s')
    t.notOk((seen.envKeys as string[]).some((k) => k.startsWith('WIKIFARM_')), 'no WIKIFARM_ variable at all')
    t.notMatch(String(seen.selfCmdline), ENV_SECRET)
    if (mode === 'process') {
      t.not(seen.pid, process.pid, 'it ran in its own process')
      t.match(seen.owner, /^refused: ERR_ACCESS_DENIED/, 'another site\'s owner.json is out of reach')
      t.match(seen.parentCmdline, /^refused: /, 'so is the farm\'s command line')
      t.match(seen.parentEnviron, /^refused: /, 'and the farm\'s environment')
    } else {
      t.equal(seen.mainThread, false, 'it ran in a worker thread')
      // Documented in docs/security.md: a worker shares the farm's files and /proc/self.
      t.match(seen.owner, OWNER_SECRET, 'worker (documented, not contained): the farm\'s files are readable')
    }
  })
}

t.test('process: the child cannot signal, debug or renice the farm, read its /proc, or start processes or addons',
  async (t) => {
  const farm = await boundaryFarm(t, { escape: { isolation: 'process' }, nosy: { enabled: false } })
  const who = (await farm.call('GET', '/plugin/escape/who')).json
  t.equal(who.farmPid, process.pid, 'the plugin knows the farm\'s pid')
  if (process.getuid?.() === 0) {
    t.equal(who.uid, 65534, 'the farm runs as root: the plugin runs as nobody; the kernel itself refuses the rest')
  } else {
    t.equal(who.uid, process.getuid?.(), 'not root: the same user; the guard and permission model refuse the rest')
  }
  const signals = (await farm.call('POST', '/plugin/escape/signal')).json
  for (const [what, result] of Object.entries(signals)) t.match(result, /^refused: /, `${what}: refused`)
  t.equal(farm.status('escape').state, 'running')
  const proc = (await farm.call('GET', '/plugin/escape/proc')).json
  t.match(proc, { environ: /^refused: /, cmdline: /^refused: / }, 'the farm\'s /proc entries are out of reach')
  const spawned = (await farm.call('POST', '/plugin/escape/spawn')).json
  t.match(spawned, { child: /^refused: /, worker: /^refused: /, addon: /^refused: /, inspector: /^refused: / },
    'no process, thread, native code or inspector of its own')
  // process.abort() ends the child only.
  await farm.call('POST', '/plugin/escape/abort').catch(() => null)
  await eventually(() => farm.status('escape').crashes === 1, 5000, 'the abort ended the plugin')
  t.equal((await http(farm.port, 'GET', '/system/sitemap.json', A)).status, 200, 'the farm serves')
  await eventually(() => farm.status('escape').state === 'running', 10_000, 'it restarts')
  t.match(farm.status('escape'), { crashes: 1, reason: null })
})

t.test('worker: signals, inspectors, a renice, abort, processes, threads and addons are refused; the farm lives',
  async (t) => {
  const farm = await boundaryFarm(t, { escape: { isolation: 'worker' }, nosy: { enabled: false } })
  t.equal((await farm.call('GET', '/plugin/escape/who')).json.farmPid, process.pid)
  const signals = (await farm.call('POST', '/plugin/escape/signal')).json
  for (const [what, result] of Object.entries(signals)) {
    t.match(result, /^refused: ERR_ACCESS_DENIED/, `${what}: refused`)
  }
  const spawned = (await farm.call('POST', '/plugin/escape/spawn')).json
  const denied = /^refused: ERR_ACCESS_DENIED/
  t.match(spawned, { child: denied, worker: denied, addon: denied, inspector: denied })
  t.equal((await farm.call('POST', '/plugin/escape/abort')).status, 500,
    'process.abort() throws in the plugin instead of ending the farm')
  t.equal(farm.status('escape').state, 'running')
  // Documented in docs/security.md as not contained: the farm's /proc/self is the worker's.
  t.match((await farm.call('GET', '/plugin/escape/proc')).json, { cmdline: /^done: / },
    'worker (documented): the farm\'s /proc/self is readable')
})

/** Peak RSS of this process (the farm) while `run` goes on, MiB. */
async function peakRss(run: Promise<unknown>): Promise<number> {
  let peak = process.memoryUsage().rss
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss) }, 10)
  try {
    await run
  } finally {
    clearInterval(timer)
  }
  return Math.round(peak / 1048576)
}

for (const mode of MODES) {
  t.test(`${mode}: 1 GB of Buffers (outside the V8 heap) ends the plugin at its limit; the farm's RSS stays bounded`,
    async (t) => {
    const grants = { escape: { isolation: mode, maxHeapMb: 64, maxRssMb: 160 }, nosy: { enabled: false } }
    const farm = await boundaryFarm(t, grants)
    const before = Math.round(process.memoryUsage().rss / 1048576)
    let hoard: Answer | null = null
    const peak = await peakRss(farm.call('POST', '/plugin/escape/hoard', { mb: 1024 }).then((r) => { hoard = r }))
    t.comment(`${mode}: farm RSS ${before} MiB before, peak ${peak} MiB while the plugin hoarded`)
    const reason = /out of memory: (RSS \d+ MiB passed the limit of 160 MiB|\d+ MiB held \(heap and Buffers\), limit 160 MiB)/
    t.match(hoard, { status: 503, json: { reason } }, 'the hoarding request is answered: the plugin was ended')
    // A worker's Buffers are the farm's memory until it ends: bounded by the limit and what one
    // check period lets it allocate, far below the 1 GB it asked for.
    t.ok(peak - before < (mode === 'worker' ? 512 : 128), `the farm grew by ${peak - before} MiB`)
    await eventually(() => farm.status('escape').state === 'running', 8000, 'it restarts')
    t.equal(farm.status('escape').crashes, 1)
  })
}

t.test('a third-party plugin whose top-level code never finishes is failed after the launch timeout; the farm boots',
  async (t) => {
  const started = Date.now()
  const grants = { stuck: { package: STUCK }, nosy: { enabled: false }, escape: { enabled: false } }
  const farm = await boundaryFarm(t, grants, undefined, { pluginLaunchTimeoutMs: 1000 })
  t.ok(Date.now() - started < 8000, 'the boot waited only for the timeout')
  t.match(farm.status('stuck'), {
    state: 'failed', isolation: 'process', pid: null, launches: 0,
    reason: 'could not load: describing itself did not finish within 1000 ms',
  }, 'its module ran in its own process by default, and that process is gone')
  t.equal((await http(farm.port, 'GET', '/system/sitemap.json', A)).status, 200, 'the farm serves')
})
