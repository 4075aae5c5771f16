// wikifarm installs on a fresh machine as its users install it: `npm pack` of the repository
// (the dist/ that `npm run build` makes), `npm install -g --prefix DIR` of the tarball, and
// DIR/bin/wikifarm serves pages. The tarball holds the compiled farm and its types, and no
// TypeScript to run, tests or bench.
import t from 'tap'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { INSTALL, REPO, env, npm, pack, pageTitle, run, startFarm } from './fixtures/installed-farm.js'

t.test('npm pack, npm install -g --prefix DIR: DIR/bin/wikifarm serves a page', { timeout: 110_000 }, async (t) => {
  t.ok(existsSync(join(REPO, 'dist/core/kernel.js')), 'the package is built (npm run build)')
  const tmp = await mkdtemp(join(tmpdir(), 'wikifarm-install-'))
  t.teardown(() => rm(tmp, { recursive: true, force: true }))

  const { filename, files } = await pack(REPO, tmp)
  t.ok(files.includes('bin/wikifarm.js'), 'the command')
  t.ok(files.includes('dist/core/kernel.js') && files.includes('dist/core/kernel.d.ts'), 'the kernel, with its types')
  t.ok(
    files.includes('dist/core/plugin-api.js') && files.includes('dist/core/plugin-api.d.ts'),
    'the SDK, with its types',
  )
  t.same(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), [], 'no TypeScript sources to run')
  t.same(
    files.filter((f) => /^dist\/(test|bench)\//.test(f) || f.includes('tsbuildinfo')),
    [],
    'no tests, bench or build state',
  )

  const prefix = join(tmp, 'prefix')
  await npm(tmp, ['install', '-g', '--prefix', prefix, ...INSTALL, '--prefer-offline', filename])
  const command = join(prefix, 'bin/wikifarm')
  const { version } = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string }
  t.equal((await run(command, ['--version'], { env })).stdout.trim(), `wikifarm ${version}`)
  const farm = await startFarm(command, tmp, ['--data', join(tmp, 'data'), '--plugins_disable', 'txtzyme'])
  t.teardown(() => farm.stop())
  t.equal(await pageTitle(farm.port), 'Welcome Visitors', 'a page read')
  t.equal(await pageTitle(farm.port, 'b.example'), 'Welcome Visitors', 'another site of the farm')
  t.match(farm.logs.find((line) => line.plugin === 'linkmap' && line.msg === 'plugin launched'), { isolation: 'none' },
    'the built-in plugins load from the installed package')
})
