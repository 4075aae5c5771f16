// The operator CLI: every flag, the config file, WIKIFARM_* variables, their precedence, every
// error path (one line, exit 2), and the real `wikifarm` bin booting, serving and closing.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { request } from 'node:http'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseCli, usage, envNames } from '../core/cli.js'
import { DEFAULTS, type FarmConfig } from '../core/farm-config.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BIN = join(ROOT, 'bin', 'wikifarm.js')
const MIB = 1024 * 1024

/** Every flag the operator guide and the reference farm promise. */
const FLAGS = [
  '--port', '-p', '--host', '-o', '--data', '-d', '--farm', '-f', '--allowed', '--security_type', '--cookieSecret',
  '--admin', '--home', '--config', '--conf', '--security_legacy', '--secure_cookie', '--session_duration',
  '--uploadLimit', '--idleSeconds', '--cacheMB', '--origins', '--trustProxy', '--logLevel', '--help', '-h',
  '--version', '-v',
]

function configOf(argv: string[], env: NodeJS.ProcessEnv = {}): { config: FarmConfig; warnings: string[] } {
  const result = parseCli(argv, env)
  if (!('config' in result)) throw new Error(`expected a config for ${argv.join(' ')}`)
  return result
}

/** The one-line reason parseCli refuses `argv` with (and that it is a WIKIFARM_ERR_CONFIG). */
function refusal(t: Test, argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    parseCli(argv, env)
  } catch (err) {
    const e = err as Error & { code?: string }
    t.equal(e.code, 'WIKIFARM_ERR_CONFIG', `${argv.join(' ')}: coded error`)
    t.notMatch(e.message, /\n/, `${argv.join(' ')}: one line`)
    return e.message
  }
  t.fail(`${argv.join(' ')} was accepted`)
  return ''
}

t.test('defaults: no flags, no file, no environment', async (t) => {
  const { config, warnings } = configOf([])
  const { cookieSecret, cookieSecretIsRandom, ...rest } = config
  t.same(rest, DEFAULTS)
  t.match(cookieSecret, /^[0-9a-f]{64}$/, 'a random cookie secret')
  t.equal(cookieSecretIsRandom, true)
  t.not(configOf([]).config.cookieSecret, cookieSecret, 'a new one each time')
  t.equal(warnings.length, 1)
  t.match(warnings[0], /random.*sessions? end.*restart/i)
})

t.test('every flag', async (t) => {
  const cases: [string[], Partial<FarmConfig>][] = [
    [['--port', '8080'], { port: 8080 }],
    [['-p', '8081'], { port: 8081 }],
    [['--port=0'], { port: 0 }],
    [['--port', '65535'], { port: 65535 }],
    [['--host', '127.0.0.1'], { host: '127.0.0.1' }],
    [['-o', '::1'], { host: '::1' }],
    [['--data', '/srv/wiki'], { data: '/srv/wiki' }],
    [['-d', 'rel/data'], { data: 'rel/data' }],
    [['--farm'], { farm: true }],
    [['-f'], { farm: true }],
    [['--farm', '--no-farm'], { farm: false }],
    [['--allowed', 'a.example.com, B.Example.com ,www.c.example.com.'], { allowed: ['a.example.com', 'b.example.com', 'c.example.com'] }],
    [['--allowed', 'bücher.example'], { allowed: ['xn--bcher-kva.example'] }],
    [['--allowed', '*'], { allowed: ['*'] }],
    [['--allowed', '*,a.com'], { allowed: ['*', 'a.com'] }],
    [['--security_type', 'friends'], { security_type: 'friends' }],
    [['--cookieSecret', 's3cret'], { cookieSecret: 's3cret', cookieSecretIsRandom: false }],
    [['--admin', 'adm1n'], { admin: 'adm1n' }],
    [['--home', 'about-this-wiki'], { home: 'about-this-wiki' }],
    [['--security_legacy'], { security_legacy: true }],
    [['--secure_cookie'], { secure_cookie: true }],
    [['--session_duration', '2.5'], { session_duration: 2.5 }],
    [['--uploadLimit', '1024'], { uploadLimit: 1024 }],
    [['--uploadLimit', '5mb'], { uploadLimit: 5 * MIB }],
    [['--uploadLimit', '10KB'], { uploadLimit: 10240 }],
    [['--uploadLimit', '1gb'], { uploadLimit: 1024 * MIB }],
    [['--uploadLimit', '1.5mb'], { uploadLimit: 1.5 * MIB }],
    [['--idleSeconds', '0'], { idleSeconds: 0 }],
    [['--idleSeconds', '30'], { idleSeconds: 30 }],
    [['--cacheMB', '8'], { cacheBytes: 8 * MIB }],
    [['--cacheMB', '0.5'], { cacheBytes: MIB / 2 }],
    [['--origins', 'https://Other.example/, http://localhost:8080'], { origins: ['https://other.example', 'http://localhost:8080'] }],
    [['--trustProxy'], { trustProxy: true }],
    [['--logLevel', 'debug'], { logLevel: 'debug' }],
    [['--logLevel', 'SILENT'], { logLevel: 'silent' }],
  ]
  for (const [argv, expected] of cases) {
    t.match(configOf(argv).config, expected, argv.join(' '))
  }
})

t.test('--help and --version', async (t) => {
  for (const flag of ['--help', '-h']) {
    const result = parseCli([flag], {})
    t.same(result, { help: usage() }, flag)
  }
  t.same(parseCli(['-p', '80', '--help'], {}), { help: usage() }, 'help wins over other flags')
  for (const flag of ['--version', '-v']) {
    t.match(parseCli([flag], {}), { version: /^wikifarm \d+\.\d+\.\d+/ }, flag)
  }
  const help = usage()
  for (const flag of FLAGS) t.match(help, new RegExp(`(^|[\\s,])${flag}\\b`), `usage documents ${flag}`)
  t.match(help, /wikiDomains/)
  t.match(help, /WIKIFARM_PORT/)
  t.match(help, /Precedence: flags, then the config file, then WIKIFARM_\* variables, then the defaults/)
})

t.test('usage gives every flag its default', async (t) => {
  // One entry per flag: its first line starts with the flag, continuation lines are indented.
  const entries: string[] = []
  for (const line of usage().split('\n')) {
    if (/^ {2}(-\w, | {4})--\w/.test(line)) entries.push(line.trim())
    else if (/^ {20,}\S/.test(line) && entries.length > 0) entries[entries.length - 1] += ` ${line.trim()}`
  }
  t.ok(entries.length >= 20, 'every flag has an entry')
  for (const entry of entries.filter((e) => !/--(help|version)\b/.test(e))) {
    t.match(entry, /\(default: [^)]+\)$/, entry.split(/\s+/).slice(0, 2).join(' '))
  }
})

t.test('precedence: flag > config file > environment > default', async (t) => {
  const dir = t.testdir({
    'farm.json': JSON.stringify({ port: 4001, home: 'from-file', logLevel: 'warn' }),
  })
  const file = join(dir, 'farm.json')
  const env = { WIKIFARM_PORT: '4002', WIKIFARM_HOME: 'from-env', WIKIFARM_DATA: '/env/data', WIKIFARM_LOG_LEVEL: 'error' }

  t.equal(configOf([], {}).config.port, 3000, 'default')
  t.equal(configOf([], env).config.port, 4002, 'env over default')
  t.equal(configOf(['--config', file], env).config.port, 4001, 'file over env')
  t.equal(configOf(['--config', file, '--port', '4003'], env).config.port, 4003, 'flag over file')
  t.equal(configOf(['--port', '4003'], env).config.port, 4003, 'flag over env')

  const { config } = configOf(['--config', file, '--home', 'from-flag'], env)
  t.equal(config.home, 'from-flag')
  t.equal(config.logLevel, 'warn', 'file over env, key by key')
  t.equal(config.data, '/env/data', 'env fills what the file and flags leave')
  t.equal(config.host, DEFAULTS.host, 'default fills the rest')

  t.equal(configOf(['--conf', file]).config.port, 4001, '--conf is --config')
  t.equal(configOf([], { WIKIFARM_CONFIG: file }).config.port, 4001, 'WIKIFARM_CONFIG names the file')
  t.equal(configOf(['--config', file], { WIKIFARM_CONFIG: '/nope.json' }).config.port, 4001, '--config over WIKIFARM_CONFIG')

  // Booleans: a flag can turn off what the file turned on.
  const on = join(t.testdir({ 'on.json': JSON.stringify({ farm: true, trustProxy: true }) }), 'on.json')
  t.equal(configOf(['--config', on, '--no-farm']).config.farm, false)
  t.equal(configOf(['--config', on]).config.trustProxy, true)
  t.equal(configOf([], { WIKIFARM_FARM: 'yes' }).config.farm, true)
  t.equal(configOf(['--config', join(t.testdir({ 'off.json': '{"farm": false}' }), 'off.json')], { WIKIFARM_FARM: '1' }).config.farm, false,
    'a false in the file beats a true in the environment')
})

t.test('environment variables', async (t) => {
  t.same(envNames('port'), ['WIKIFARM_PORT'])
  t.same(envNames('cookieSecret'), ['WIKIFARM_COOKIE_SECRET', 'WIKIFARM_COOKIESECRET'])
  t.same(envNames('security_type'), ['WIKIFARM_SECURITY_TYPE'])
  t.same(envNames('cacheMB'), ['WIKIFARM_CACHE_MB', 'WIKIFARM_CACHEMB'])

  const { config } = configOf([], {
    WIKIFARM_PORT: '5000', WIKIFARM_HOST: '127.0.0.1', WIKIFARM_DATA: '/d', WIKIFARM_FARM: 'true',
    WIKIFARM_ALLOWED: 'a.com,b.com', WIKIFARM_SECURITY_TYPE: 'friends', WIKIFARM_COOKIE_SECRET: 'cs',
    WIKIFARM_ADMIN: 'ad', WIKIFARM_HOME: 'start', WIKIFARM_SECURITY_LEGACY: 'on', WIKIFARM_SECURE_COOKIE: 'true',
    WIKIFARM_SESSION_DURATION: '3', WIKIFARM_UPLOAD_LIMIT: '2mb', WIKIFARM_IDLE_SECONDS: '9', WIKIFARM_CACHE_MB: '4',
    WIKIFARM_ORIGINS: 'https://x.org', WIKIFARM_TRUST_PROXY: 'true', WIKIFARM_LOG_LEVEL: 'trace',
    WIKIFARM_WIKI_DOMAINS: '{"Example.COM": {}}',
  })
  t.same(config, {
    port: 5000, host: '127.0.0.1', data: '/d', farm: true, allowed: ['a.com', 'b.com'], wikiDomains: { 'example.com': {} },
    security_type: 'friends', cookieSecret: 'cs', cookieSecretIsRandom: false, admin: 'ad', home: 'start',
    security_legacy: true, secure_cookie: true, session_duration: 3, idleSeconds: 9, uploadLimit: 2 * MIB,
    cacheBytes: 4 * MIB, origins: ['https://x.org'], trustProxy: true, logLevel: 'trace',
  })

  t.equal(configOf([], { WIKIFARM_COOKIESECRET: 'upper' }).config.cookieSecret, 'upper', 'the key uppercased works too')
  t.equal(configOf([], { WIKIFARM_IDLESECONDS: '7' }).config.idleSeconds, 7)
  t.equal(configOf([], { WIKIFARM_COOKIE_SECRET: 'same', WIKIFARM_COOKIESECRET: 'same' }).config.cookieSecret, 'same')
  t.match(refusal(t, [], { WIKIFARM_COOKIE_SECRET: 'a', WIKIFARM_COOKIESECRET: 'b' }),
    /^WIKIFARM_COOKIE_SECRET and WIKIFARM_COOKIESECRET: both set, to different values/)
  t.equal(configOf([], { WIKIFARM_PORT: '' }).config.port, 3000, 'an empty variable is unset')
  t.equal(configOf([], { WIKIFARM_REQUIRE_TOOLS: '1', WIKIFARM_SOMETHING_ELSE: 'x' }).config.port, 3000,
    'other WIKIFARM_* variables (test switches) are left alone')
  t.equal(configOf([], { WIKIFARM_FARM: 'off' }).config.farm, false)
  t.match(refusal(t, [], { WIKIFARM_PORT: 'http' }), /^WIKIFARM_PORT: must be a port number from 0 to 65535, got "http"$/)
  t.match(refusal(t, [], { WIKIFARM_FARM: 'maybe' }), /^WIKIFARM_FARM: must be true or false, got "maybe"$/)
  t.match(refusal(t, [], { WIKIFARM_WIKI_DOMAINS: '{nope' }), /^WIKIFARM_WIKI_DOMAINS: must be a JSON object/)
  t.match(refusal(t, [], { WIKIFARM_SECURITY_TYPE: 'passportjs' }), /^WIKIFARM_SECURITY_TYPE: only "friends" security is supported, got "passportjs"$/)
})

t.test('config file: every key, wikiDomains, reference-farm files', async (t) => {
  const dir = t.testdir({
    'full.json': JSON.stringify({
      port: '4100', host: '127.0.0.1', data: '/srv/farm', farm: true, allowed: ['one.example.org', 'TWO.example.org'],
      wikiDomains: {
        'Example.org': { security_type: 'friends', admin: 'domain-admin', cookieSecret: 'dcs', home: 'hello', session_duration: 1 },
        'wiki.test': {},
      },
      security_type: 'friends', cookieSecret: 'file-secret', admin: null, home: 'welcome-visitors',
      security_legacy: false, secure_cookie: true, session_duration: 14, uploadLimit: '1mb', idleSeconds: 60,
      cacheMB: 16, origins: 'https://a.example, https://b.example', trustProxy: true, logLevel: 'warn',
    }),
    'reference.json': JSON.stringify({
      farm: true, port: 3000, data: '/home/wiki/.wiki', security_type: 'friends', cookieSecret: 'x',
      url: 'http://localhost:3000', root: '/usr/lib/wiki', packageDir: '/usr/lib/node_modules', autoseed: true,
      database: { type: './page.js' },
      wikiDomains: { 'fed.wiki': { github_clientID: 'abc', admin: 'sekrit' } },
    }),
  })
  const { config, warnings } = configOf(['--config', join(dir, 'full.json')])
  t.same(config, {
    port: 4100, host: '127.0.0.1', data: '/srv/farm', farm: true, allowed: ['one.example.org', 'two.example.org'],
    wikiDomains: {
      'example.org': { security_type: 'friends', admin: 'domain-admin', cookieSecret: 'dcs', home: 'hello', session_duration: 1 },
      'wiki.test': {},
    },
    security_type: 'friends', cookieSecret: 'file-secret', cookieSecretIsRandom: false, admin: null, home: 'welcome-visitors',
    security_legacy: false, secure_cookie: true, session_duration: 14, uploadLimit: MIB, idleSeconds: 60, cacheBytes: 16 * MIB,
    origins: ['https://a.example', 'https://b.example'], trustProxy: true, logLevel: 'warn',
  })
  t.match(warnings, [/wikiDomains "example.org": per-domain .*"admin".* not applied yet/], 'per-domain overrides are reported as not applied')
  t.notOk(warnings.some((w) => /promiscuous/.test(w)))

  const ref = configOf(['--config', join(dir, 'reference.json')])
  t.equal(ref.config.data, '/home/wiki/.wiki')
  t.same(Object.keys(ref.config.wikiDomains), ['fed.wiki'])
  t.equal(ref.config.wikiDomains['fed.wiki']?.github_clientID, 'abc', 'foreign per-domain keys are kept')
  for (const key of ['url', 'root', 'packageDir', 'autoseed', 'database']) {
    t.ok(ref.warnings.some((w) => w.includes(`"${key}"`)), `reference key ${key} is reported as ignored`)
  }
  t.ok(ref.warnings.some((w) => /"github_clientID" ignored/.test(w)))
  t.ok(configOf(['--url', 'http://x', '-r', '/y', '--autoseed']).warnings.some((w) => /--url .*ignores/.test(w)), 'reference flags too')
})

t.test('warnings at boot', async (t) => {
  const warned = (argv: string[], pattern: RegExp): boolean => configOf(argv).warnings.some((w) => pattern.test(w))
  const promiscuous = /promiscuous farm: .*every Host is served/
  t.ok(warned(['--farm', '--cookieSecret', 'x'], promiscuous), 'farm with neither allowed nor wikiDomains')
  t.notOk(warned(['--farm', '--allowed', 'a.com'], promiscuous), 'not with --allowed')
  t.notOk(warned(['--farm', '--allowed', '*'], promiscuous), 'not with --allowed *')
  t.notOk(warned([], promiscuous), 'not for a single site')
  const dir = t.testdir({ 'd.json': JSON.stringify({ farm: true, wikiDomains: { 'a.com': {} } }) })
  t.notOk(warned(['--config', join(dir, 'd.json')], promiscuous), 'not with wikiDomains')

  t.ok(warned([], /no cookieSecret configured.*random/), 'random secret')
  t.notOk(warned(['--cookieSecret', 'x'], /cookieSecret/), 'not with a secret')
  t.ok(warned(['--security_legacy'], /security_legacy is on/), 'security_legacy')
  t.notOk(warned([], /security_legacy/))
  t.ok(warned(['--allowed', 'a.com'], /only apply with --farm/), 'allowed without --farm')
  t.same(configOf(['--farm', '--allowed', 'a.com', '--cookieSecret', 'x']).warnings, [], 'a tidy farm boots silently')
})

t.test('flag errors: one line, naming the flag', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--bogus'], /^--bogus: unknown flag \(wikifarm --help lists them\)$/],
    [['--bogus=1'], /^--bogus: unknown flag/],
    [['-x'], /^-x: unknown flag/],
    [['--cookie-secret', 'x'], /^--cookie-secret: unknown flag; did you mean --cookieSecret\?$/],
    [['--wikiDomains', '{}'], /^--wikiDomains: wikiDomains is set in the config file/],
    [['--test'], /^--test: .*not supported/],
    [['--no-port'], /^--no-port: unknown flag/],
    [['--port'], /^--port: needs a value$/],
    [['--port', '--farm'], /^--port: needs a value \(write --port=VALUE/],
    [['--farm=yes'], /^--farm: takes no value \(use --no-farm/],
    [['serve'], /^"serve": unexpected argument/],
    [['--port', 'abc'], /^--port: must be a port number from 0 to 65535, got "abc"$/],
    [['--port', '70000'], /^--port: must be a port number from 0 to 65535, got "70000"$/],
    [['--port=-1'], /^--port: must be a port number/],
    [['--port', '80.5'], /^--port: must be a port number/],
    [['--port', '0x50'], /^--port: must be a port number/],
    [['--port', ''], /^--port: must be a port number/],
    [['--idleSeconds', 'soon'], /^--idleSeconds: must be a whole number of seconds/],
    [['--idleSeconds', '1.5'], /^--idleSeconds: must be a whole number/],
    [['--session_duration', '0'], /^--session_duration: must be a number of days above 0, got "0"$/],
    [['--session_duration', 'week'], /^--session_duration: must be a number of days/],
    [['--cacheMB', '0'], /^--cacheMB: must be a number of MiB above 0/],
    [['--cacheMB', 'lots'], /^--cacheMB: must be a number of MiB/],
    [['--uploadLimit', '5tb'], /^--uploadLimit: must be a byte count like 5242880 or "5mb", got "5tb"$/],
    [['--uploadLimit', '0'], /^--uploadLimit: must be a byte count/],
    [['--security_type', 'passportjs'], /^--security_type: only "friends" security is supported, got "passportjs"$/],
    [['--security_type', './security'], /^--security_type: only "friends"/],
    [['--logLevel', 'loud'], /^--logLevel: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"$/],
    [['--home', 'Welcome Visitors'], /^--home: must be a page slug/],
    [['--allowed', ''], /^--allowed: must list at least one host name/],
    [['--allowed', ' , '], /^--allowed: must list at least one host name/],
    [['--allowed', 'good.com,bad host'], /^--allowed: "bad host" is not a host name$/],
    [['--allowed', '..'], /^--allowed: "\.\." is not a host name$/],
    [['--origins', 'example.com'], /^--origins: "example.com" is not an origin like https:\/\/example.com$/],
    [['--origins', 'https://a.com/path'], /^--origins: "https:\/\/a.com\/path" is not an origin/],
    [['--origins', 'ftp://a.com'], /^--origins: "ftp:\/\/a.com" is not an origin/],
    [['--cookieSecret', ' '], /^--cookieSecret: must not be empty$/],
    [['--admin', ''], /^--admin: must not be empty$/],
    [['--data', ''], /^--data: must not be empty$/],
    [['--config', 'a.json', '--conf', 'b.json'], /^--config and --conf: name the same setting/],
    [['--config', ''], /^--config: must not be empty$/],
  ]
  for (const [argv, pattern] of cases) t.match(refusal(t, argv), pattern, argv.join(' '))
})

t.test('config file errors: one line, naming the file and the key', async (t) => {
  const dir = t.testdir({
    'bad.json': '{ "port": 3000, }',
    'array.json': '[1, 2]',
    'null.json': 'null',
    'empty.json': '',
    'proto.json': '{"__proto__": {"farm": true}}',
    'unknown.json': '{"prot": 3000}',
    'typo.json': '{"cookie_secret": "x"}',
    'badport.json': '{"port": "http"}',
    'boolstr.json': '{"farm": "sometimes"}',
    'security.json': '{"security_type": "passportjs"}',
    'domains.json': '{"wikiDomains": ["a.com"]}',
    'domainval.json': '{"wikiDomains": {"a.com": "friends"}}',
    'domainhost.json': '{"wikiDomains": {"not a host": {}}}',
    'domaindup.json': '{"wikiDomains": {"A.com": {}, "a.com": {}}}',
    'domainsec.json': '{"wikiDomains": {"a.com": {"security_type": "passportjs"}}}',
    'domainwide.json': '{"wikiDomains": {"a.com": {"port": 80}}}',
    'nested.json': '{"config": "other.json"}',
    'database.json': '{"database": {"type": "mongodb"}}',
    'test.json': '{"test": true}',
    'allowedtype.json': '{"allowed": 5}',
    'admin.json': '{"admin": 42}',
    folder: {},
  })
  const f = (name: string): string => join(dir, name)
  const cases: [string, RegExp][] = [
    ['missing.json', /^--config .*missing\.json: cannot read the config file: no such file$/],
    ['folder', /^--config .*folder: cannot read the config file: is a folder/],
    ['bad.json', /^--config .*bad\.json: the config file is not valid JSON: /],
    ['empty.json', /^--config .*empty\.json: the config file is not valid JSON/],
    ['array.json', /^--config .*array\.json: the config file must hold one JSON object/],
    ['null.json', /^--config .*null\.json: the config file must hold one JSON object/],
    ['proto.json', /^--config .*proto\.json: the config file is not valid JSON: .*prototype/i],
    ['unknown.json', /unknown\.json key "prot": unknown key; did you mean "port"\?$/],
    ['typo.json', /typo\.json key "cookie_secret": unknown key; did you mean "cookieSecret"\?$/],
    ['badport.json', /badport\.json key "port": must be a port number from 0 to 65535, got "http"$/],
    ['boolstr.json', /boolstr\.json key "farm": must be true or false, got "sometimes"$/],
    ['security.json', /security\.json key "security_type": only "friends" security is supported, got "passportjs"$/],
    ['domains.json', /domains\.json key "wikiDomains": must be an object/],
    ['domainval.json', /key "wikiDomains" "a\.com": must be an object of per-domain settings, got "friends"$/],
    ['domainhost.json', /key "wikiDomains" "not a host": "not a host" is not a host name$/],
    ['domaindup.json', /key "wikiDomains" "a\.com": repeats the domain a\.com$/],
    ['domainsec.json', /key "wikiDomains" "a\.com" key "security_type": only "friends" security is supported/],
    ['domainwide.json', /key "wikiDomains" "a\.com" key "port": is farm-wide/],
    ['nested.json', /nested\.json key "config": a config file cannot name another one$/],
    ['database.json', /database\.json key "database": only the file store/],
    ['test.json', /test\.json key "test": .*not supported/],
    ['allowedtype.json', /allowedtype\.json key "allowed": must be a comma-separated list, got 5$/],
    ['admin.json', /admin\.json key "admin": must be a string, got 42$/],
  ]
  for (const [name, pattern] of cases) t.match(refusal(t, ['--config', f(name)]), pattern, name)
  t.match(refusal(t, [], { WIKIFARM_CONFIG: f('missing.json') }), /^WIKIFARM_CONFIG .*missing\.json: cannot read/)
  t.match(refusal(t, ['--conf', f('missing.json')]), /^--conf .*missing\.json: cannot read/)
})

// ─── the real bin ───────────────────────────────────────────────────────────────────────────

interface Run {
  child: ChildProcess
  stdout: string
  stderr: string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const children = new Set<ChildProcess>()
t.teardown(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
})

function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WIKIFARM_') && !k.startsWith('TAP')) env[k] = v
  return { ...env, ...extra }
}

function runBin(args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Run {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  const run: Run = {
    child, stdout: '', stderr: '',
    exited: new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))),
  }
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { run.stdout += chunk })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { run.stderr += chunk })
  return run
}

async function waitFor(run: Run, pattern: RegExp, ms = 30_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const match = pattern.exec(run.stdout)
    if (match) return match
    if (run.child.exitCode !== null) throw new Error(`wikifarm exited ${run.child.exitCode}: ${run.stderr}${run.stdout}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${pattern}: ${run.stdout}${run.stderr}`)
}

function get(url: string, host?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, host ? { headers: { host } } : {}, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

function logLines(stdout: string): { level: number; msg: string }[] {
  return stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string })
}

t.test('bin: an unknown flag exits 2 with one line on stderr', async (t) => {
  const run = runBin(['--bogus'])
  const { code } = await run.exited
  t.equal(code, 2)
  t.equal(run.stderr, 'wikifarm: --bogus: unknown flag (wikifarm --help lists them)\n')
  t.equal(run.stdout, '')
})

t.test('bin: bad values exit 2 with one line on stderr', async (t) => {
  const dir = t.testdir({ 'bad.json': '{"port": 80,,}', 'key.json': '{"prot": 80}' })
  const cases: [string[], RegExp][] = [
    [['--port', 'abc'], /^wikifarm: --port: must be a port number from 0 to 65535, got "abc"\n$/],
    [['--security_type', 'passportjs'], /^wikifarm: --security_type: only "friends" security is supported, got "passportjs"\n$/],
    [['--config', join(dir, 'nope.json')], /^wikifarm: --config .*nope\.json: cannot read the config file: no such file\n$/],
    [['--config', join(dir, 'bad.json')], /^wikifarm: --config .*bad\.json: the config file is not valid JSON: [^\n]*\n$/],
    [['--config', join(dir, 'key.json')], /^wikifarm: .*key\.json key "prot": unknown key; did you mean "port"\?\n$/],
    [['--port', '--farm'], /^wikifarm: --port: needs a value [^\n]*\n$/],
  ]
  await Promise.all(cases.map(async ([args, pattern]) => {
    const run = runBin(args)
    const { code } = await run.exited
    t.equal(code, 2, `${args.join(' ')}: exit 2`)
    t.match(run.stderr, pattern, `${args.join(' ')}: one line`)
    t.equal(run.stdout, '')
  }))
  const run = runBin([], cleanEnv({ WIKIFARM_PORT: 'x' }))
  t.equal((await run.exited).code, 2, 'a bad WIKIFARM_ variable exits 2')
  t.match(run.stderr, /^wikifarm: WIKIFARM_PORT: must be a port number[^\n]*\n$/)
})

t.test('bin: --help exits 0 and lists every flag; --version exits 0', async (t) => {
  const help = runBin(['--help'])
  const version = runBin(['-v'])
  t.equal((await help.exited).code, 0)
  t.equal(help.stderr, '')
  t.equal(help.stdout, usage())
  for (const flag of FLAGS) t.match(help.stdout, new RegExp(`(^|[\\s,])${flag}\\b`), flag)
  t.equal((await version.exited).code, 0)
  t.match(version.stdout, /^wikifarm \d+\.\d+\.\d+\n$/)
})

t.test('bin: boots, serves, warns, and closes cleanly on SIGTERM', async (t) => {
  const data = t.testdir({})
  const run = runBin(['--host', '127.0.0.1', '--port', '0', '--data', data, '--logLevel', 'info'])
  const [, url] = await waitFor(run, /wikifarm serving .* on (http:\/\/127\.0\.0\.1:\d+)/)
  t.ok(url)
  const page = await get(`${url}/welcome-visitors.json`)
  t.equal(page.status, 200)
  t.match(JSON.parse(page.body), { title: String, story: Array })
  t.match(logLines(run.stdout), [{ level: 40, msg: /no cookieSecret configured/ }], 'the random-secret warning is logged')

  run.child.kill('SIGTERM')
  const { code, signal } = await run.exited
  t.equal(code, 0, 'exit 0')
  t.equal(signal, null)
  t.match(run.stdout, /SIGTERM: closing the farm/)
  t.match(run.stdout, /farm closed/)
  t.equal(run.stderr, '')
})

t.test('bin: a farm from a config file, closed by SIGINT', async (t) => {
  const dir = t.testdir({ data: { 'wiki.example.com': { pages: {} } } })
  const config = join(dir, 'farm.json')
  writeFileSync(config, JSON.stringify({
    farm: true, host: '127.0.0.1', data: join(dir, 'data'), cookieSecret: 'a-long-enough-farm-secret',
    wikiDomains: { 'Example.com': {} },
  }))
  const run = runBin(['--config', config, '--port', '0'])
  const [, url] = await waitFor(run, /wikifarm serving .* as a farm on (http:\/\/127\.0\.0\.1:\d+)/)
  t.equal((await get(`${url}/welcome-visitors.json`, 'wiki.example.com')).status, 200, 'a subdomain of a wikiDomain')
  t.equal((await get(`${url}/welcome-visitors.json`, 'example.com:80')).status, 200, 'the wikiDomain itself')
  const refused = await get(`${url}/welcome-visitors.json`, 'elsewhere.net')
  t.equal(refused.status, 404, 'any other host')
  t.match(JSON.parse(refused.body), { code: 'WIKIFARM_ERR_UNKNOWN_SITE' })
  t.notOk(logLines(run.stdout).some((l) => l.level >= 40), 'no warnings for a tidy farm')

  run.child.kill('SIGINT')
  const { code } = await run.exited
  t.equal(code, 0)
  t.match(run.stdout, /SIGINT: closing the farm/)
})
