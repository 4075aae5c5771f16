// --store (the config file's "store", WIKIFARM_STORE): a PostgreSQL URL, checked at boot like
// every setting, and treated as the secret it is: a warning when given as a flag, hidden from
// the process's command line, never repeated by an error or a log line (the password shows as ***).
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseCli, redactedCommandLine, secretFlagWarning } from '../core/boot/cli.js'
import { redactStoreUrl } from '../core/pages/store-url.js'
import { startPostgres } from './fixtures/postgres.js'

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'wikifarm.js')
const URL_WITH_SECRET = 'postgres://farm:s3cret-pw@db.internal:5432/wiki'
/** Every node of a farm on PostgreSQL signs cookies with the operator's secret: required there. */
const SECRET_ENV = { WIKIFARM_COOKIE_SECRET: 'k'.repeat(40) }

t.test('the store is the file store unless a postgres:// URL is given', async (t) => {
  const plain = parseCli([], {})
  if (!('config' in plain)) throw new Error('no config')
  t.equal(plain.config.store, null, 'default: files in the data folder')
  const flag = parseCli(['--store', URL_WITH_SECRET], SECRET_ENV)
  if (!('config' in flag)) throw new Error('no config')
  t.equal(flag.config.store, URL_WITH_SECRET)
  t.ok(flag.warnings.includes(secretFlagWarning('store')), 'a flag is warned about')
  t.match(secretFlagWarning('store'), /set "store" in the config file or WIKIFARM_STORE instead/)
  const env = parseCli([], { WIKIFARM_STORE: URL_WITH_SECRET, ...SECRET_ENV })
  if (!('config' in env)) throw new Error('no config')
  t.equal(env.config.store, URL_WITH_SECRET, 'WIKIFARM_STORE')
  t.notOk(env.warnings.some((w) => w.includes('puts a secret')), 'the environment is not warned about')
  const file = join(t.testdir(), 'farm.json')
  writeFileSync(file, JSON.stringify({ store: 'postgresql://farm@localhost/wiki?host=/run/postgresql' }))
  const fromFile = parseCli(['--config', file], SECRET_ENV)
  if (!('config' in fromFile)) throw new Error('no config')
  t.equal(fromFile.config.store, 'postgresql://farm@localhost/wiki?host=/run/postgresql', 'a socket folder for host, from the file')
})

t.test('a farm on PostgreSQL refuses to start without a configured cookie secret', async (t) => {
  t.throws(() => parseCli(['--store', URL_WITH_SECRET], {}),
    { code: 'WIKIFARM_ERR_CONFIG', message: /cookieSecret: required with the PostgreSQL store/ })
  t.throws(() => parseCli([], { WIKIFARM_STORE: URL_WITH_SECRET }), { code: 'WIKIFARM_ERR_CONFIG' })
  const file = join(t.testdir(), 'farm.json')
  writeFileSync(file, JSON.stringify({ store: URL_WITH_SECRET, cookieSecret: 'from-the-file-'.repeat(3) }))
  const ok = parseCli(['--config', file], {})
  t.ok('config' in ok && ok.config.cookieSecret === 'from-the-file-'.repeat(3), 'a secret in the config file will do')
  t.doesNotThrow(() => parseCli([], {}), 'the file store keeps its random secret (one process)')
})

t.test('a bad store URL is refused with a reason that does not quote it', async (t) => {
  for (const [value, reason] of [
    ['mysql://root:s3cret-pw@db/x', /must start with postgres:\/\//],
    ['postgres://farm:s3cret-pw@db.internal:5432/', /names no database/],
    ['postgres:///wiki', /names no host/],
    ['s3cret-pw', /must be a URL like postgres:\/\//],
  ] as const) {
    t.throws(() => parseCli(['--store', value], {}), { code: 'WIKIFARM_ERR_CONFIG', message: reason },
      value.replace('s3cret-pw', '…'))
    try {
      parseCli([], { WIKIFARM_STORE: value })
    } catch (err) {
      t.notMatch((err as Error).message, 's3cret-pw', 'the message holds no password')
    }
  }
  t.equal(redactStoreUrl(URL_WITH_SECRET), 'postgres://farm:***@db.internal:5432/wiki')
  t.equal(redactStoreUrl('postgres://farm@db/wiki?password=s3cret-pw'), 'postgres://farm@db/wiki?password=***')
  t.equal(redactedCommandLine(['node', 'wikifarm', '--store', URL_WITH_SECRET]), 'node wikifarm --store ***')
  t.equal(redactedCommandLine(['node', 'wikifarm', `--store=${URL_WITH_SECRET}`]), 'node wikifarm --store=***')
})

interface Ran { out: string; pid: number; code: number | null }

function run(t: Test, args: string[], env: NodeJS.ProcessEnv, until: RegExp): Promise<Ran> {
  const child = spawn(process.execPath, [BIN, '--host', '127.0.0.1', '--port', '0', '--data', t.testdir(), ...args],
    { env: { PATH: process.env.PATH, ...SECRET_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 30_000
    const poll = setInterval(() => {
      if (until.test(out) || child.exitCode !== null) {
        clearInterval(poll)
        setTimeout(() => resolve({ out, pid: child.pid as number, code: child.exitCode }), 100)
      } else if (Date.now() > deadline) {
        clearInterval(poll)
        reject(new Error(`nothing matched ${until}: ${out}`))
      }
    }, 50)
  })
}

t.test('bin: a store that cannot be reached stops the boot with a coded reason and no password', async (t) => {
  const result = await run(t, [], { WIKIFARM_STORE: 'postgres://farm:s3cret-pw@127.0.0.1:1/wiki' }, /cannot start/)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.match(result.out, /wikifarm: cannot start: The page store cannot be reached/)
  t.notMatch(result.out, 's3cret-pw')
})

t.test('bin: a farm on PostgreSQL without a cookie secret exits 2 with a coded reason', async (t) => {
  const result = await run(t, [], { WIKIFARM_STORE: 'postgres://farm:s3cret-pw@127.0.0.1:1/wiki',
    WIKIFARM_COOKIE_SECRET: '' }, /(?!)/) // matches nothing: resolves when the process exits
  t.match(result.out, /cookieSecret: required with the PostgreSQL store/)
  t.equal(result.code, 2)
  t.notMatch(result.out, 's3cret-pw')
})

t.test('bin: a farm on PostgreSQL says where it serves from, password hidden, from its command line too', async (t) => {
  const server = await startPostgres(t)
  if (!server) return
  const url = await server.createDatabase('flags')
  const result = await run(t, ['--store', url, '--logLevel', 'info'], {}, /wikifarm serving/)
  const password = new URL(url).password
  t.match(result.out, /wikifarm serving PostgreSQL postgres:\/\/wikifarm:\*\*\*@127\.0\.0\.1:\d+\/flags/)
  t.match(result.out, /--store puts a secret on the command line/)
  t.notMatch(result.out, password, 'no log line holds the password')
  t.notMatch(readFileSync(`/proc/${result.pid}/cmdline`, 'latin1'), password, 'nor does the command line')
})
