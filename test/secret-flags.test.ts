// Secrets never travel in argv: the admin secret and the cookie secret are read from the config
// file or WIKIFARM_* variables without a word; given as flags they still work, with a warning
// naming where they belong, and once read the farm's command line (ps, /proc/<pid>/cmdline,
// and a worker-thread plugin's /proc/self/cmdline) no longer shows them.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseCli, redactedCommandLine, secretFlagWarning } from '../core/boot/cli.js'

/** The real command, beside dist/ (tests run from dist/test). */
const BIN = fileURLToPath(new URL('../../bin/wikifarm.js', import.meta.url))
const ADMIN = 'admin-secret-in-argv-0123456789'
const COOKIE = 'cookie-secret-in-argv-0123456789'

function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WIKIFARM_') && !k.startsWith('TAP')) env[k] = v
  return { ...env, ...extra }
}

t.test('a secret given as a flag is accepted with a warning; from the file or the environment, silently', async (t) => {
  const flags = parseCli(['--admin', ADMIN, `--cookieSecret=${COOKIE}`], {})
  if (!('config' in flags)) throw new Error('no config')
  t.match(flags.config, { admin: ADMIN, cookieSecret: COOKIE })
  t.ok(flags.warnings.includes(secretFlagWarning('admin')), 'a warning for --admin')
  t.ok(flags.warnings.includes(secretFlagWarning('cookieSecret')), 'and one for --cookieSecret')
  t.match(secretFlagWarning('admin'),
    /^--admin puts a secret on the command line, .*set "admin" in the config file or WIKIFARM_ADMIN instead$/)

  const dir = t.testdir({ 'farm.json': JSON.stringify({ admin: ADMIN }) })
  const file = parseCli(['--config', join(dir, 'farm.json')], {})
  const env = parseCli([], { WIKIFARM_ADMIN: ADMIN, WIKIFARM_COOKIE_SECRET: COOKIE })
  for (const [where, parsed] of [['config file', file], ['environment', env]] as const) {
    if (!('config' in parsed)) throw new Error('no config')
    t.equal(parsed.config.admin, ADMIN, `the admin secret from the ${where}`)
    t.notOk(parsed.warnings.some((w) => w.includes('puts a secret')), `no secret warning from the ${where}`)
  }
})

t.test('the command line the farm shows hides secret values, in both flag spellings', async (t) => {
  t.equal(redactedCommandLine(['node', 'wikifarm', '--admin', ADMIN, '--port', '3000', `--cookieSecret=${COOKIE}`]),
    'node wikifarm --admin *** --port 3000 --cookieSecret=***')
  t.equal(redactedCommandLine(['node', 'wikifarm', '--port', '3000']), null, 'nothing to hide: left alone')
})

interface RunningFarm { pid: number; stdout: () => string }

async function runFarm(t: Test, args: string[], env: NodeJS.ProcessEnv): Promise<RunningFarm> {
  const dir = t.testdir()
  const flags = ['--host', '127.0.0.1', '--port', '0', '--data', dir, '--logLevel', 'info', ...args]
  const child = spawn(process.execPath, [BIN, ...flags], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  const until = Date.now() + 30_000
  while (!/Server listening/.test(out)) {
    if (child.exitCode !== null || Date.now() > until) throw new Error(`the farm did not start: ${out}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { pid: child.pid as number, stdout: () => out }
}

t.test('bin: --admin on the command line logs the warning and leaves /proc/<pid>/cmdline without it', async (t) => {
  const farm = await runFarm(t, ['--admin', ADMIN], cleanEnv())
  const warning = farm.stdout().split('\n').filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string })
    .find((l) => l.msg.startsWith('--admin puts a secret'))
  t.match(warning, { level: 40, msg: secretFlagWarning('admin') },
    'a warn line names the flag and where the secret belongs')
  const cmdline = readFileSync(`/proc/${farm.pid}/cmdline`, 'latin1')
  t.notMatch(cmdline, ADMIN, 'the running farm\'s command line does not hold the secret')
  t.match(cmdline, /--admin \*\*\*/, 'it shows that one was given')
})

t.test('bin: WIKIFARM_ADMIN gives the secret with no warning', async (t) => {
  const farm = await runFarm(t, [], cleanEnv({ WIKIFARM_ADMIN: ADMIN }))
  t.notMatch(farm.stdout(), /puts a secret/)
  t.notMatch(readFileSync(`/proc/${farm.pid}/cmdline`, 'latin1'), ADMIN)
})
