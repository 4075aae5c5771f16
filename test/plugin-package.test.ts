// A plugin in its own package, as an author ships it and an operator installs it: the
// repository is packed (`npm pack`: the dist/ that `npm run build` makes) and installed into a
// farm folder; the fixture plugin package test/fixtures/plugin-package is built with this
// repository's tsc against the installed wikifarm's types, packed and installed beside it
// offline (its peer dependency is that wikifarm, never one from the registry). Granted by its
// package name, it answers its REST route and its websocket with isolation none, worker and
// process; and Node itself refuses `wikifarm/core/...` imports from the farm's modules.
import t from 'tap'
import { chmod, cp, mkdir, mkdtemp, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { httpCall } from './fixtures/http-client.js'
import { openWs } from './fixtures/ws-client.js'
import { INSTALL, REPO, env, npm, pack, pageTitle, run, startFarm } from './fixtures/installed-farm.js'

const FIXTURE = join(REPO, 'test/fixtures/plugin-package')
const TSC = join(REPO, 'node_modules/typescript/bin/tsc')

t.test('a plugin package installed into a farm folder beside wikifarm', { timeout: 110_000 }, async (t) => {
  t.ok(existsSync(join(REPO, 'dist/core/kernel.js')), 'the package is built (npm run build)')
  const tmp = await mkdtemp(join(tmpdir(), 'wikifarm-package-'))
  // Readable by others, as a farm's install folder is: a root farm runs process plugins as nobody.
  await chmod(tmp, 0o755)
  t.teardown(() => rm(tmp, { recursive: true, force: true }))

  const wikifarm = await pack(REPO, tmp)

  // The farm folder: wikifarm from its tarball, then the plugin package beside it.
  const farmDir = join(tmp, 'farm')
  await mkdir(farmDir)
  await writeFile(join(farmDir, 'package.json'), JSON.stringify({ name: 'my-farm', private: true }))
  await npm(farmDir, ['install', ...INSTALL, '--prefer-offline', wikifarm.filename])

  // The author's workspace: the fixture's sources; its devDependencies (wikifarm, typebox) are
  // the farm's, so it builds against the types the wikifarm package ships.
  const author = join(tmp, 'author/greeter')
  await mkdir(author, { recursive: true })
  for (const entry of ['package.json', 'tsconfig.json', 'src']) {
    await cp(join(FIXTURE, entry), join(author, entry), { recursive: true })
  }
  await symlink(join(farmDir, 'node_modules'), join(author, 'node_modules'))
  await run(process.execPath, [TSC, '-p', author], { env })
  const built = await readFile(join(author, 'dist/index.js'), 'utf8')
  t.match(built, /from 'wikifarm\/plugin'/, 'the plugin imports the SDK by its package name')
  t.notMatch(built, /wikifarm\/core|\.\.\/core\//, 'and nothing of the kernel')
  const greeter = await pack(author, tmp)
  t.same(greeter.files.sort(), ['dist/index.d.ts', 'dist/index.js', 'dist/index.js.map', 'package.json'],
    'the plugin package ships dist/')

  // Offline: the peer dependency is the wikifarm installed above, never one from the registry.
  await npm(farmDir, ['install', ...INSTALL, '--offline', greeter.filename])
  const lock = JSON.parse(await readFile(join(farmDir, 'package-lock.json'), 'utf8')) as
    { packages: Record<string, { resolved?: string; version?: string; peerDependencies?: Record<string, string> }> }
  t.match(lock.packages['node_modules/wikifarm'], { resolved: /^file:/ }, 'wikifarm is the packed one')
  t.match(lock.packages['node_modules/wikifarm-plugin-greeter'],
    { resolved: /^file:/, peerDependencies: { wikifarm: String } })
  const copies = Object.keys(lock.packages).filter((path) => path.endsWith('/wikifarm'))
  t.same(copies, ['node_modules/wikifarm'],
    'one wikifarm in the farm: the plugin has no copy of its own')

  await t.test(
    'a module in the farm folder reaches wikifarm/plugin and wikifarm, and never wikifarm/core/...',
    async (t) => {
      const probe = join(farmDir, 'probe.mjs')
      await writeFile(
        probe,
        [
          "const sdk = await import('wikifarm/plugin')",
          "const kernel = await import('wikifarm')",
          "let refused = 'imported'",
          "try { await import('wikifarm/core/kernel.js') } catch (err) { refused = err.code }",
          "let refusedApi = 'imported'",
          "try { await import('wikifarm/dist/core/plugin-api.js') } catch (err) { refusedApi = err.code }",
          'const found = {',
          '  sdk: Object.keys(sdk).sort(), createKernel: typeof kernel.createKernel, port: kernel.DEFAULTS.port,',
          '  refused, refusedApi,',
          '}',
          'console.log(JSON.stringify(found))',
        ].join('\n'),
      )
      const { stdout } = await run(process.execPath, [probe], { cwd: farmDir, env })
      t.same(JSON.parse(stdout), {
        sdk: [
          'API_VERSION',
          'PluginHttpError',
          'PluginUnavailable',
          'SUBPROTOCOL_V1',
          'definePlugin',
          'reply',
          'route',
          'socket',
        ],
        createKernel: 'function',
        port: 3000,
        refused: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
        refusedApi: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
      })
    },
  )

  // One farm per isolation mode, started together (each on its own data folder).
  const modes = ['none', 'worker', 'process'] as const
  const started = await Promise.allSettled(modes.map(async (isolation) => {
    const config = join(farmDir, `farm-${isolation}.json`)
    await writeFile(config, JSON.stringify({
      plugins: {
        txtzyme: { enabled: false },
        greeter: { package: 'wikifarm-plugin-greeter', isolation, options: { greeting: 'hi' } },
      },
    }))
    const command = join(farmDir, 'node_modules/.bin/wikifarm')
    return startFarm(command, farmDir, ['--data', join(farmDir, `data-${isolation}`), '--config', config])
  }))
  t.teardown(() => Promise.all(started.flatMap((s) => (s.status === 'fulfilled' ? [s.value.stop()] : []))))
  for (const [index, isolation] of modes.entries()) {
    await t.test(`the plugin package, granted by its name, with isolation ${isolation}`, async (t) => {
      const outcome = started[index]
      if (outcome?.status !== 'fulfilled') throw outcome?.reason ?? new Error('no farm')
      const farm = outcome.value
      t.equal(await pageTitle(farm.port), 'Welcome Visitors', 'a page read')
      const launched = farm.logs.find((line) => line.plugin === 'greeter' && line.msg === 'plugin launched')
      t.match(launched, { isolation }, `launched with isolation ${isolation}`)
      if (isolation === 'process') t.not(launched?.pid, farm.pid, 'in a child process of its own')

      const get = (path: string, host: string) =>
        httpCall(farm.port, { path: `/plugin/greeter${path}`, headers: { host } })
      const hello = await get('/hello?name=ann', 'a.example')
      t.equal(hello.status, 200)
      t.same(JSON.parse(hello.body), { greeting: 'hi, ann', site: 'a.example', visitor: true })
      const nobody = await get('/hello?name=nobody', 'b.example')
      t.equal(nobody.status, 404)
      t.same(JSON.parse(nobody.body), { error: 'nobody is here', code: 'GREETER_NOBODY' })
      const invalid = await get('/hello?name=', 'a.example')
      t.equal(invalid.status, 400, 'the route schema is the kernel\'s to check')
      t.equal(JSON.parse(invalid.body).code, 'WIKIFARM_ERR_VALIDATION')

      const chat = await openWs(farm.port, '/plugin/greeter/chat', 'a.example', { protocols: 'wikifarm.v1' })
      t.same(await chat.nextJson(5000), { type: 'welcome', data: { site: 'a.example' } })
      chat.send({ type: 'say', id: 'm1', data: 'there' })
      t.same(await chat.nextJson(5000), { type: 'said', id: 'm1', data: 'hi: there' })
      chat.ws.close(1000)
      await chat.waitClose(5000)
    })
  }

  await t.test('installed from its folder as a link (npm install <folder>), with isolation process', async (t) => {
    // npm links a folder it installs: the plugin's real path is outside node_modules, and the
    // child may read it (the plugin's own folder), never the farm's data.
    await npm(farmDir, ['install', ...INSTALL, '--offline', '--no-install-links', author])
    const linked = await realpath(join(farmDir, 'node_modules/wikifarm-plugin-greeter'))
    t.equal(linked, await realpath(author), 'a link to the author\'s folder')
    const config = join(farmDir, 'farm-linked.json')
    await writeFile(config, JSON.stringify({
      plugins: { txtzyme: { enabled: false }, greeter: { package: 'wikifarm-plugin-greeter', isolation: 'process' } },
    }))
    const command = join(farmDir, 'node_modules/.bin/wikifarm')
    const farm = await startFarm(command, farmDir, ['--data', join(farmDir, 'data-linked'), '--config', config])
    t.teardown(() => farm.stop())
    t.match(
      farm.logs.find((line) => line.plugin === 'greeter' && line.msg === 'plugin launched'),
      { isolation: 'process' },
    )
    const hello = await httpCall(farm.port, { path: '/plugin/greeter/hello', headers: { host: 'a.example' } })
    t.same(JSON.parse(hello.body), { greeting: 'hello, stranger', site: 'a.example', visitor: true })
  })
})
