// What a `process` plugin's child may read besides the compiled farm and node_modules: its
// plugin's folder, and never one that holds the farm's data folder (every site's pages and
// owners). A plugin module lying in the folder that holds the data is refused with a reason in
// process isolation (and runs in the others, which do not confine reads); kept in a folder of
// its own, it runs in process isolation and cannot read the pages.
import t, { type Test } from 'tap'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startFarm } from './fixtures/test-farm.js'

const HOST = 'a.example'

// A plugin that tries to read a page file of the data folder it is given in its options.
const NOSY = `import { readFile } from 'node:fs/promises'
import { definePlugin } from 'wikifarm/plugin'
export default definePlugin({
  name: 'nosy', trust: 'site',
  async launch(_kernel, options) {
    return { routes: [{ method: 'GET', url: '/peek', async handler() {
      try { return { read: (await readFile(options.page, 'utf8')).length } }
      catch (err) { return { refused: err.code } }
    } }] }
  },
})
`

/** A farm on <folder>/data, with nosy granted from <folder>/<module> and pointed at a page file. */
async function farmIn(t: Test, folder: string, module: string, isolation: 'none' | 'worker' | 'process') {
  const data = join(folder, 'data')
  const page = join(data, HOST, 'pages', 'secret-page')
  await mkdir(join(data, HOST, 'pages'), { recursive: true })
  await writeFile(page, JSON.stringify({ title: 'Secret Page', story: [] }))
  return startFarm(t, {
    farm: true,
    plugins: { nosy: { package: join(folder, module), isolation, options: { page } } },
  }, data)
}

t.test('a process plugin in the folder that holds the data folder is refused', async (t) => {
  // nosy.js beside data/: the child could read its folder, and with it every site's pages.
  const folder = t.testdir({ 'nosy.js': NOSY })
  const farm = await farmIn(t, folder, 'nosy.js', 'process')
  t.match(farm.kernel.plugins.statuses().find((s) => s.name === 'nosy'),
    { state: 'failed', reason: /holds the farm's data folder, which a process plugin must not read/ })
  const answer = await farm.app.inject({ url: '/plugin/nosy/peek', headers: { host: HOST } })
  t.equal(answer.statusCode, 503, 'it does not run')
  const relaunch = await farm.kernel.plugins.relaunch('nosy')
  t.match(relaunch, { state: 'failed' }, 'and an administrator\'s relaunch does not start it either')
})

t.test('in a folder of its own it runs in process isolation, and cannot read the pages', async (t) => {
  const folder = t.testdir({ plugin: { 'nosy.js': NOSY } })
  const farm = await farmIn(t, folder, 'plugin/nosy.js', 'process')
  t.match(farm.kernel.plugins.statuses().find((s) => s.name === 'nosy'), { state: 'running', isolation: 'process' })
  const answer = await farm.app.inject({ url: '/plugin/nosy/peek', headers: { host: HOST } })
  t.same(answer.json(), { refused: 'ERR_ACCESS_DENIED' }, 'the permission model refuses the page file')
})

t.test('the guard is for process isolation only: in-process and worker plugins read what the farm reads', async (t) => {
  for (const isolation of ['none', 'worker'] as const) {
    const folder = t.testdir({ 'nosy.js': NOSY })
    const farm = await farmIn(t, folder, 'nosy.js', isolation)
    t.match(farm.kernel.plugins.statuses().find((s) => s.name === 'nosy'), { state: 'running', isolation })
    const answer = await farm.app.inject({ url: '/plugin/nosy/peek', headers: { host: HOST } })
    t.ok(answer.json().read > 0, `${isolation}: not confined (docs/security.md)`)
    await farm.kernel.close()
  }
})
