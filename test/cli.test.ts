// The operator CLI: every flag, the config file, WIKIFARM_* variables, their precedence, every
// error path (one line, exit 2), and the real `wikifarm` bin booting, serving and closing.
import { PACKAGE_ROOT } from '../core/package-info.js'
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { request } from 'node:http'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { parseCli, usage, envNames } from '../core/boot/cli.js'
import { DEFAULTS, type FarmConfig } from '../core/farm-config.js'

const ROOT = PACKAGE_ROOT
const BIN = join(ROOT, 'bin', 'wikifarm.js')
const MIB = 1024 * 1024

/** Every flag the operator guide and the reference farm promise. */
const FLAGS = [
  '--port', '-p', '--host', '-o', '--data', '-d', '--farm', '-f', '--allowed', '--security_type', '--cookieSecret',
  '--admin', '--home', '--config', '--conf', '--security_legacy', '--secure_cookie', '--session_duration',
  '--uploadLimit', '--idleSeconds', '--cacheMB', '--origins', '--trustProxy', '--logLevel', '--help', '-h',
  '--version', '-v', '--plugins_disable', '--plugins_farm', '--plugin_timeout', '--maxPayload', '--sendBuffer',
  '--pingSeconds',
]

/** Config keys that have no flag: the file and the environment only. */
const FILE_KEYS = [
  'wikiDomains',
  'plugins',
  'plugin_handler_timeout',
  'plugin_close_timeout',
  'plugin_heartbeat_timeout',
  'plugin_restart_limit',
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
    [
      ['--allowed', 'a.example.com, B.Example.com ,www.c.example.com.'],
      { allowed: ['a.example.com', 'b.example.com', 'c.example.com'] },
    ],
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
    [
      ['--origins', 'https://Other.example/, http://localhost:8080'],
      { origins: ['https://other.example', 'http://localhost:8080'] },
    ],
    [['--trustProxy'], { trustProxy: true }],
    [['--logLevel', 'debug'], { logLevel: 'debug' }],
    [['--logLevel', 'SILENT'], { logLevel: 'silent' }],
    [['--plugins_disable', 'txtzyme'], { plugins: { txtzyme: { enabled: false } } }],
    [['--plugins_disable', 'a, b-2,a'], { plugins: { a: { enabled: false }, 'b-2': { enabled: false } } }],
    [['--plugins_farm', 'txtzyme,linkmap'], { plugins: { txtzyme: { trust: 'farm' }, linkmap: { trust: 'farm' } } }],
    [['--plugins_farm', 'x', '--plugins_disable', 'x'], { plugins: { x: { enabled: false, trust: 'farm' } } }],
    [['--plugin_timeout', '2500'], { pluginLaunchTimeoutMs: 2500 }],
    [['--plugin_timeout', '2147483647'], { pluginLaunchTimeoutMs: 2147483647 }],
    [['--maxPayload', '65536'], { maxPayload: 65536 }],
    [['--maxPayload', '2mb'], { maxPayload: 2 * MIB }],
    [['--maxPayload', '16MB'], { maxPayload: 16 * MIB }],
    [['--maxPayload', '64kb'], { maxPayload: 65536 }],
    [['--sendBuffer', '8mb'], { sendBufferBytes: 8 * MIB }],
    [['--sendBuffer', '1gb'], { sendBufferBytes: 1024 * MIB }],
    [['--sendBuffer', '100000'], { sendBufferBytes: 100000 }],
    [['--pingSeconds', '5'], { pingIntervalSeconds: 5 }],
    [['--pingSeconds=3600'], { pingIntervalSeconds: 3600 }],
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
  for (const key of FILE_KEYS) t.match(help, new RegExp(`^  ${key} `, 'm'), `usage documents the config key ${key}`)
  t.match(help, /WIKIFARM_PLUGINS hold JSON/)
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
  t.ok(entries.length >= 26, 'every flag has an entry')
  for (const entry of entries.filter((e) => !/--(help|version)\b/.test(e))) {
    t.match(entry, /\(default: [^)]+\)$/, entry.split(/\s+/).slice(0, 2).join(' '))
  }
  // The keys that have no flag, listed under "Config file", have theirs too.
  const fileSection = usage().split('Config file:')[1]?.split('\n\n')[0] ?? ''
  const keys: string[] = []
  for (const line of fileSection.split('\n').slice(1)) {
    if (/^ {2}\w/.test(line)) keys.push(line.trim())
    else if (keys.length > 0) keys[keys.length - 1] += ` ${line.trim()}`
  }
  t.same(keys.map((k) => k.split(/\s+/)[0]), FILE_KEYS, 'the file-only keys, in order')
  for (const entry of keys) t.match(entry, /\(default: [^)]+\)$/, entry.split(/\s+/)[0] ?? '')
})

t.test('precedence: flag > config file > environment > default', async (t) => {
  const dir = t.testdir({
    'farm.json': JSON.stringify({ port: 4001, home: 'from-file', logLevel: 'warn' }),
  })
  const file = join(dir, 'farm.json')
  const env = {
    WIKIFARM_PORT: '4002',
    WIKIFARM_HOME: 'from-env',
    WIKIFARM_DATA: '/env/data',
    WIKIFARM_LOG_LEVEL: 'error',
  }

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
  t.equal(
    configOf(['--config', file], { WIKIFARM_CONFIG: '/nope.json' }).config.port,
    4001,
    '--config over WIKIFARM_CONFIG',
  )

  // Booleans: a flag can turn off what the file turned on.
  const on = join(t.testdir({ 'on.json': JSON.stringify({ farm: true, trustProxy: true }) }), 'on.json')
  t.equal(configOf(['--config', on, '--no-farm']).config.farm, false)
  t.equal(configOf(['--config', on]).config.trustProxy, true)
  t.equal(configOf([], { WIKIFARM_FARM: 'yes' }).config.farm, true)
  t.equal(
    configOf(['--config', join(t.testdir({ 'off.json': '{"farm": false}' }), 'off.json')], { WIKIFARM_FARM: '1' })
      .config.farm,
    false,
    'a false in the file beats a true in the environment',
  )
})

t.test('environment variables', async (t) => {
  t.same(envNames('port'), ['WIKIFARM_PORT'])
  t.same(envNames('cookieSecret'), ['WIKIFARM_COOKIE_SECRET', 'WIKIFARM_COOKIESECRET'])
  t.same(envNames('security_type'), ['WIKIFARM_SECURITY_TYPE'])
  t.same(envNames('cacheMB'), ['WIKIFARM_CACHE_MB', 'WIKIFARM_CACHEMB'])

  const { config } = configOf([], {
    WIKIFARM_PORT: '5000',
    WIKIFARM_HOST: '127.0.0.1',
    WIKIFARM_DATA: '/d',
    WIKIFARM_FARM: 'true',
    WIKIFARM_ALLOWED: 'a.com,b.com',
    WIKIFARM_SECURITY_TYPE: 'friends',
    WIKIFARM_COOKIE_SECRET: 'cs',
    WIKIFARM_ADMIN: 'ad',
    WIKIFARM_HOME: 'start',
    WIKIFARM_NEIGHBORS: 'a.org, b.org',
    WIKIFARM_SECURITY_LEGACY: 'on',
    WIKIFARM_SECURE_COOKIE: 'true',
    WIKIFARM_SESSION_DURATION: '3',
    WIKIFARM_UPLOAD_LIMIT: '2mb',
    WIKIFARM_IDLE_SECONDS: '9',
    WIKIFARM_CACHE_MB: '4',
    WIKIFARM_ORIGINS: 'https://x.org',
    WIKIFARM_TRUST_PROXY: 'true',
    WIKIFARM_LEGACY_PLUGINS: 'yes',
    WIKIFARM_LOG_LEVEL: 'trace',
    WIKIFARM_WIKI_DOMAINS: '{"Example.COM": {}}',
    WIKIFARM_PLUGINS: '{"echo": {"sites": ["A.com"], "options": {"greeting": "hi"}}}',
    WIKIFARM_PLUGINS_DISABLE: 'txtzyme',
    WIKIFARM_PLUGINS_FARM: 'linkmap',
    WIKIFARM_PLUGIN_TIMEOUT: '1500',
    WIKIFARM_PLUGIN_HANDLER_TIMEOUT: '2500',
    WIKIFARM_PLUGIN_CLOSE_TIMEOUT: '3500',
    WIKIFARM_MAX_PAYLOAD: '64kb',
    WIKIFARM_SEND_BUFFER: '2mb',
    WIKIFARM_PING_SECONDS: '15',
    WIKIFARM_LOGIN_RATE: '5',
    WIKIFARM_CLAIM_RATE: '6',
    WIKIFARM_EDIT_RATE: '70',
    WIKIFARM_UPGRADE_RATE: '0',
    WIKIFARM_SOCKETS_PER_IP: '8',
    WIKIFARM_SOCKETS_PER_SITE: '90',
    WIKIFARM_ITEM_LIMIT: '1mb',
    WIKIFARM_PAGE_LIMIT: '3mb',
    WIKIFARM_ACTION_LIMIT: '2mb',
    WIKIFARM_CONNECTIONS_PER_IP: '40',
    WIKIFARM_READ_RATE: '100',
    WIKIFARM_HEADER_SECONDS: '5',
    WIKIFARM_REQUEST_SECONDS: '30',
    WIKIFARM_KEEP_ALIVE_SECONDS: '4',
    WIKIFARM_SOCKET_IDLE_SECONDS: '90',
    WIKIFARM_STORE: 'postgres://u:p@db/w',
    WIKIFARM_METRICS_PORT: '9100',
    WIKIFARM_METRICS_HOST: '10.0.0.2',
  })
  t.same(config, {
    port: 5000,
    host: '127.0.0.1',
    metricsPort: 9100,
    metricsHost: '10.0.0.2',
    data: '/d',
    farm: true,
    store: 'postgres://u:p@db/w',
    allowed: ['a.com', 'b.com'],
    wikiDomains: { 'example.com': {} },
    security_type: 'friends',
    cookieSecret: 'cs',
    cookieSecretIsRandom: false,
    admin: 'ad',
    home: 'start',
    neighbors: 'a.org,b.org',
    security_legacy: true,
    secure_cookie: true,
    session_duration: 3,
    idleSeconds: 9,
    uploadLimit: 2 * MIB,
    cacheBytes: 4 * MIB,
    origins: ['https://x.org'],
    trustProxy: true,
    nodeUrl: null,
    pluginForwarding: true,
    legacyPlugins: true,
    logLevel: 'trace',
    plugins: {
      echo: { sites: ['a.com'], options: { greeting: 'hi' } },
      txtzyme: { enabled: false },
      linkmap: { trust: 'farm' },
    },
    pluginLaunchTimeoutMs: 1500,
    pluginHandlerTimeoutMs: 2500,
    pluginCloseTimeoutMs: 3500,
    pluginHeartbeatTimeoutMs: 5000,
    pluginRestartLimit: 5,
    maxPayload: 65536,
    sendBufferBytes: 2 * MIB,
    pingIntervalSeconds: 15,
    loginRate: 5,
    claimRate: 6,
    editRate: 70,
    upgradeRate: 0,
    socketsPerIp: 8,
    socketsPerSite: 90,
    itemLimit: MIB,
    pageLimit: 3 * MIB,
    actionLimit: 2 * MIB,
    connectionsPerIp: 40,
    readRate: 100,
    headerSeconds: 5,
    requestSeconds: 30,
    keepAliveSeconds: 4,
    socketIdleSeconds: 90,
  })
  t.same(envNames('maxPayload'), ['WIKIFARM_MAX_PAYLOAD', 'WIKIFARM_MAXPAYLOAD'])
  t.same(envNames('plugins_disable'), ['WIKIFARM_PLUGINS_DISABLE'])
  t.equal(configOf([], { WIKIFARM_MAXPAYLOAD: '2kb' }).config.maxPayload, 2048, 'the key uppercased')
  t.equal(configOf([], { WIKIFARM_PINGSECONDS: '9' }).config.pingIntervalSeconds, 9)
  t.match(refusal(t, [], { WIKIFARM_PLUGINS: '{nope' }), /^WIKIFARM_PLUGINS: must be a JSON object/)
  t.match(refusal(t, [], { WIKIFARM_PLUGINS: '{"echo": {"trust": "all"}}' }),
    /^WIKIFARM_PLUGINS key "plugins\.echo\.trust": must be "farm" or "site", got "all"$/)
  t.match(refusal(t, [], { WIKIFARM_PLUGINS_FARM: 'Echo' }), /^WIKIFARM_PLUGINS_FARM: "Echo" is not a plugin name/)
  t.match(refusal(t, [], { WIKIFARM_MAX_PAYLOAD: '17mb' }), /^WIKIFARM_MAX_PAYLOAD: must be at most 16mb/)

  t.equal(configOf([], { WIKIFARM_COOKIESECRET: 'upper' }).config.cookieSecret, 'upper', 'the key uppercased works too')
  t.equal(configOf([], { WIKIFARM_IDLESECONDS: '7' }).config.idleSeconds, 7)
  t.equal(configOf([], { WIKIFARM_COOKIE_SECRET: 'same', WIKIFARM_COOKIESECRET: 'same' }).config.cookieSecret, 'same')
  t.match(refusal(t, [], { WIKIFARM_COOKIE_SECRET: 'a', WIKIFARM_COOKIESECRET: 'b' }),
    /^WIKIFARM_COOKIE_SECRET and WIKIFARM_COOKIESECRET: both set, to different values/)
  t.equal(configOf([], { WIKIFARM_PORT: '' }).config.port, 3000, 'an empty variable is unset')
  t.equal(configOf([], { WIKIFARM_REQUIRE_TOOLS: '1', WIKIFARM_SOMETHING_ELSE: 'x' }).config.port, 3000,
    'other WIKIFARM_* variables (test switches) are left alone')
  t.equal(configOf([], { WIKIFARM_FARM: 'off' }).config.farm, false)
  t.match(
    refusal(t, [], { WIKIFARM_PORT: 'http' }),
    /^WIKIFARM_PORT: must be a port number from 0 to 65535, got "http"$/,
  )
  t.match(refusal(t, [], { WIKIFARM_FARM: 'maybe' }), /^WIKIFARM_FARM: must be true or false, got "maybe"$/)
  t.match(refusal(t, [], { WIKIFARM_WIKI_DOMAINS: '{nope' }), /^WIKIFARM_WIKI_DOMAINS: must be a JSON object/)
  t.match(
    refusal(t, [], { WIKIFARM_SECURITY_TYPE: 'passportjs' }),
    /^WIKIFARM_SECURITY_TYPE: only "friends" security is supported, got "passportjs"$/,
  )
})

t.test('config file: every key, wikiDomains, reference-farm files', async (t) => {
  const dir = t.testdir({
    'full.json': JSON.stringify({
      port: '4100',
      host: '127.0.0.1',
      metricsPort: 9101,
      metricsHost: '::1',
      data: '/srv/farm',
      farm: true,
      allowed: ['one.example.org', 'TWO.example.org'],
      wikiDomains: {
        'Example.org': {
          security_type: 'friends',
          admin: 'domain-admin',
          cookieSecret: 'dcs',
          home: 'hello',
          session_duration: 1,
        },
        'wiki.test': {},
      },
      security_type: 'friends',
      cookieSecret: 'file-secret',
      admin: null,
      home: 'welcome-visitors',
      neighbors: 'fed.wiki.org',
      security_legacy: false,
      secure_cookie: true,
      session_duration: 14,
      uploadLimit: '1mb',
      idleSeconds: 60,
      cacheMB: 16,
      origins: 'https://a.example, https://b.example',
      trustProxy: true,
      legacyPlugins: true,
      logLevel: 'warn',
      plugins: {
        txtzyme: { enabled: true, trust: 'farm', sites: '*', options: { device: '/dev/ttyACM0', baud: 9600 } },
        linkmap: { enabled: false },
        'my-plugin': {
          package: ' @example/wikifarm-plugin ',
          trust: 'site',
          sites: ['One.Example.org', 'www.two.example.org.'],
        },
      },
      plugins_disable: ['old-thing'],
      plugins_farm: 'my-plugin',
      plugin_timeout: 20000,
      plugin_handler_timeout: '45000',
      plugin_close_timeout: 1000,
      maxPayload: '512kb',
      sendBuffer: 8388608,
      pingSeconds: '20',
      loginRate: 3,
      claimRate: '4',
      editRate: 1000,
      upgradeRate: 30,
      socketsPerIp: 0,
      socketsPerSite: '500',
      itemLimit: '512kb',
      pageLimit: 2097152,
      actionLimit: '1mb',
      connectionsPerIp: 0,
      readRate: '600',
      headerSeconds: 2.5,
      requestSeconds: '10',
      keepAliveSeconds: 1,
      socketIdleSeconds: 30,
      store: 'postgresql://u@db:5433/farm',
    }),
    'reference.json': JSON.stringify({
      farm: true,
      port: 3000,
      data: '/home/wiki/.wiki',
      security_type: 'friends',
      cookieSecret: 'x',
      url: 'http://localhost:3000',
      root: '/usr/lib/wiki',
      packageDir: '/usr/lib/node_modules',
      autoseed: true,
      database: { type: './page.js' },
      wikiDomains: { 'fed.wiki': { github_clientID: 'abc', admin: 'sekrit' } },
    }),
  })
  const { config, warnings } = configOf(['--config', join(dir, 'full.json')])
  t.same(config, {
    port: 4100,
    host: '127.0.0.1',
    metricsPort: 9101,
    metricsHost: '::1',
    data: '/srv/farm',
    farm: true,
    store: 'postgresql://u@db:5433/farm',
    allowed: ['one.example.org', 'two.example.org'],
    wikiDomains: {
      'example.org': {
        security_type: 'friends',
        admin: 'domain-admin',
        cookieSecret: 'dcs',
        home: 'hello',
        session_duration: 1,
      },
      'wiki.test': {},
    },
    security_type: 'friends',
    cookieSecret: 'file-secret',
    cookieSecretIsRandom: false,
    admin: null,
    home: 'welcome-visitors',
    neighbors: 'fed.wiki.org',
    security_legacy: false,
    secure_cookie: true,
    session_duration: 14,
    uploadLimit: MIB,
    idleSeconds: 60,
    cacheBytes: 16 * MIB,
    origins: ['https://a.example', 'https://b.example'],
    trustProxy: true,
    nodeUrl: null,
    pluginForwarding: true,
    legacyPlugins: true,
    logLevel: 'warn',
    plugins: {
      txtzyme: { enabled: true, trust: 'farm', sites: '*', options: { device: '/dev/ttyACM0', baud: 9600 } },
      linkmap: { enabled: false },
      'my-plugin': {
        package: '@example/wikifarm-plugin',
        trust: 'farm',
        sites: ['one.example.org', 'two.example.org'],
      },
      'old-thing': { enabled: false },
    },
    pluginLaunchTimeoutMs: 20000,
    pluginHandlerTimeoutMs: 45000,
    pluginCloseTimeoutMs: 1000,
    pluginHeartbeatTimeoutMs: 5000,
    pluginRestartLimit: 5,
    maxPayload: 512 * 1024,
    sendBufferBytes: 8 * MIB,
    pingIntervalSeconds: 20,
    loginRate: 3,
    claimRate: 4,
    editRate: 1000,
    upgradeRate: 30,
    socketsPerIp: 0,
    socketsPerSite: 500,
    itemLimit: 512 * 1024,
    pageLimit: 2 * MIB,
    actionLimit: MIB,
    connectionsPerIp: 0,
    readRate: 600,
    headerSeconds: 2.5,
    requestSeconds: 10,
    keepAliveSeconds: 1,
    socketIdleSeconds: 30,
  })
  t.match(
    warnings,
    [/wikiDomains "example.org": per-domain .*"admin".* not applied yet/],
    'per-domain overrides are reported as not applied',
  )
  t.notOk(warnings.some((w) => /promiscuous/.test(w)))

  const ref = configOf(['--config', join(dir, 'reference.json')])
  t.equal(ref.config.data, '/home/wiki/.wiki')
  t.same(Object.keys(ref.config.wikiDomains), ['fed.wiki'])
  t.equal(ref.config.wikiDomains['fed.wiki']?.github_clientID, 'abc', 'foreign per-domain keys are kept')
  for (const key of ['url', 'root', 'packageDir', 'autoseed', 'database']) {
    t.ok(ref.warnings.some((w) => w.includes(`"${key}"`)), `reference key ${key} is reported as ignored`)
  }
  t.ok(ref.warnings.some((w) => /"github_clientID" ignored/.test(w)))
  t.ok(
    configOf(['--url', 'http://x', '-r', '/y', '--autoseed']).warnings.some((w) => /--url .*ignores/.test(w)),
    'reference flags too',
  )
})

t.test('plugins: grants from the file, the shortcut flags merged into them', async (t) => {
  const dir = t.testdir({
    'grants.json': JSON.stringify({
      plugins: {
        echo: {
          enabled: true,
          trust: 'site',
          sites: ['A.example.com', 'a.example.com', 'B.example.com:8080'],
          options: { greeting: 'hi' },
        },
        txtzyme: { trust: 'site', options: {} },
        extra: { package: './local/plugin.js' },
        empty: {},
      },
    }),
    'shortcuts.json': JSON.stringify({ plugins_disable: 'from-file', plugins_farm: ['echo'] }),
  })
  const file = join(dir, 'grants.json')

  const { config } = configOf(['--config', file])
  t.same(config.plugins, {
    echo: { enabled: true, trust: 'site', sites: ['a.example.com', 'b.example.com'], options: { greeting: 'hi' } },
    txtzyme: { trust: 'site', options: {} },
    extra: { package: './local/plugin.js' },
    empty: {},
  }, 'grants are kept as written, host names normalised and deduplicated like allowed')

  const merged = configOf(['--config', file, '--plugins_farm', 'txtzyme,new-one', '--plugins_disable', 'echo']).config
    .plugins
  t.same(merged, {
    echo: { enabled: false, trust: 'site', sites: ['a.example.com', 'b.example.com'], options: { greeting: 'hi' } },
    txtzyme: { trust: 'farm', options: {} },
    extra: { package: './local/plugin.js' },
    empty: {},
    'new-one': { trust: 'farm' },
  }, 'a flag overrides enabled or trust of a grant, or adds one, and keeps the rest')
  t.same(
    configOf(['--config', file]).config.plugins.echo?.enabled,
    true,
    'parsing twice does not leak one merge into the next',
  )

  // The shortcut keys follow the usual precedence among themselves; each applies on top of `plugins`.
  const shortcuts = join(dir, 'shortcuts.json')
  t.same(configOf(['--config', shortcuts]).config.plugins, { 'from-file': { enabled: false }, echo: { trust: 'farm' } })
  t.same(configOf(['--config', shortcuts, '--plugins_disable', 'from-flag']).config.plugins,
    { 'from-flag': { enabled: false }, echo: { trust: 'farm' } }, 'the flag replaces the file\'s list')
  t.same(
    configOf([], { WIKIFARM_PLUGINS_DISABLE: 'from-env', WIKIFARM_PLUGINS: '{"echo": {"trust": "site"}}' }).config
      .plugins,
    { echo: { trust: 'site' }, 'from-env': { enabled: false } },
  )
  t.same(configOf(['--config', file], { WIKIFARM_PLUGINS: '{"other": {}}' }).config.plugins.other, undefined,
    'the file\'s plugins replace the environment\'s as a whole, like every other key')

  t.same(configOf(['--plugins_disable', 'a', '--plugins_disable', 'b']).config.plugins, { b: { enabled: false } },
    'a repeated flag: the last one counts (use a comma list)')
  t.same(configOf([]).config.plugins, {}, 'no grants by default')
  t.not(configOf([]).config.plugins, DEFAULTS.plugins, 'the defaults object is never handed out')
})

t.test('timeouts and websocket limits from the file', async (t) => {
  const dir = t.testdir({
    'limits.json': JSON.stringify({
      plugin_handler_timeout: 100,
      plugin_close_timeout: '200',
      plugin_heartbeat_timeout: 700,
      plugin_restart_limit: 2,
      maxPayload: 1,
      sendBuffer: '1kb',
      pingSeconds: 1,
    }),
    'isolation.json': JSON.stringify({
      plugins: {
        linkmap: { isolation: 'process', maxHeapMb: 64, maxRssMb: 200 },
        txtzyme: { isolation: 'process', allowAddons: true },
      },
    }),
    'bad-isolation.json': JSON.stringify({ plugins: { linkmap: { isolation: 'vm' } } }),
    'bad-rss.json': JSON.stringify({ plugins: { linkmap: { maxRssMb: 8 } } }),
  })
  const { config } = configOf(['--config', join(dir, 'limits.json'), '--plugin_timeout', '300'])
  t.match(config, {
    pluginLaunchTimeoutMs: 300, pluginHandlerTimeoutMs: 100, pluginCloseTimeoutMs: 200,
    pluginHeartbeatTimeoutMs: 700, pluginRestartLimit: 2,
    maxPayload: 1, sendBufferBytes: 1024, pingIntervalSeconds: 1,
  })
  t.same(configOf(['--config', join(dir, 'isolation.json')]).config.plugins, {
    linkmap: { isolation: 'process', maxHeapMb: 64, maxRssMb: 200 },
    txtzyme: { isolation: 'process', allowAddons: true },
  }, 'isolation per plugin')
  t.match(
    refusal(t, ['--config', join(dir, 'bad-isolation.json')]),
    /key "plugins\.linkmap\.isolation": must be "none", "worker" or "process", got "vm"$/,
  )
  t.match(
    refusal(t, ['--config', join(dir, 'bad-rss.json')]),
    /key "plugins\.linkmap\.maxRssMb": must be a whole number of MiB from 32 to 65536, got 8$/,
  )
  const { config: defaults } = configOf([])
  t.match(defaults, {
    pluginLaunchTimeoutMs: 10_000, pluginHandlerTimeoutMs: 30_000, pluginCloseTimeoutMs: 5_000,
    pluginHeartbeatTimeoutMs: 5_000, pluginRestartLimit: 5,
    maxPayload: MIB, sendBufferBytes: 4 * MIB, pingIntervalSeconds: 30,
  }, 'the defaults the docs state')
})

t.test('rate limits and connection caps: flags, defaults, 0 turns off, bad values refused', async (t) => {
  const defaults = configOf([]).config
  t.match(defaults, {
    loginRate: 10,
    claimRate: 10,
    editRate: 600,
    upgradeRate: 120,
    socketsPerIp: 100,
    socketsPerSite: 2000,
  })
  t.match(
    configOf([
      '--loginRate',
      '1',
      '--claimRate=2',
      '--editRate',
      '0',
      '--upgradeRate',
      '9',
      '--socketsPerIp',
      '3',
      '--socketsPerSite',
      '0',
    ]).config,
    { loginRate: 1, claimRate: 2, editRate: 0, upgradeRate: 9, socketsPerIp: 3, socketsPerSite: 0 },
  )
  t.match(
    refusal(t, ['--editRate', 'lots']),
    /^--editRate: must be a whole number a minute \(0: no limit\), got "lots"$/,
  )
  t.match(
    refusal(t, ['--socketsPerIp=1.5']),
    /^--socketsPerIp: must be a whole number of connections \(0: no cap\), got "1.5"$/,
  )
  t.match(refusal(t, ['--loginRate=-1']), /^--loginRate: must be a whole number a minute/)
})

t.test('page caps, connection caps and request deadlines: flags, defaults, bad values refused', async (t) => {
  t.match(configOf([]).config, {
    itemLimit: 4 * MIB, pageLimit: 16 * MIB, actionLimit: 5 * MIB, connectionsPerIp: 256, readRate: 3000,
    headerSeconds: 20, requestSeconds: 60, keepAliveSeconds: 72, socketIdleSeconds: 120,
  }, 'the defaults the docs state')
  t.match(
    configOf([
      '--itemLimit',
      '64kb',
      '--pageLimit=1mb',
      '--actionLimit',
      '100000',
      '--connectionsPerIp',
      '0',
      '--readRate',
      '7',
      '--headerSeconds',
      '0.5',
      '--requestSeconds',
      '90',
      '--keepAliveSeconds',
      '3',
      '--socketIdleSeconds',
      '600',
    ]).config,
    {
      itemLimit: 65536,
      pageLimit: MIB,
      actionLimit: 100000,
      connectionsPerIp: 0,
      readRate: 7,
      headerSeconds: 0.5,
      requestSeconds: 90,
      keepAliveSeconds: 3,
      socketIdleSeconds: 600,
    },
  )
  t.match(refusal(t, ['--pageLimit', 'huge']), /^--pageLimit: must be a byte count like 5242880 or "5mb", got "huge"$/)
  t.match(refusal(t, ['--itemLimit', '0']), /^--itemLimit: must be a byte count/)
  t.match(refusal(t, ['--connectionsPerIp=-3']), /^--connectionsPerIp: must be a whole number of connections/)
  t.match(refusal(t, ['--readRate', '2.5']), /^--readRate: must be a whole number a minute/)
  t.match(
    refusal(t, ['--requestSeconds', '0']),
    /^--requestSeconds: must be a number of seconds above 0 and at most 86400, got "0"$/,
  )
  t.match(
    refusal(t, ['--headerSeconds', '100000']),
    /^--headerSeconds: must be a number of seconds above 0 and at most 86400/,
  )
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
  t.notOk(warned(['--cookieSecret', 'x'], /no cookieSecret configured/), 'not with a secret')
  t.ok(warned(['--security_legacy'], /security_legacy is on/), 'security_legacy')
  t.notOk(warned([], /security_legacy/))
  t.ok(warned(['--allowed', 'a.com'], /only apply with --farm/), 'allowed without --farm')
  t.same(configOf(['--farm', '--allowed', 'a.com'], { WIKIFARM_COOKIE_SECRET: 'x' }).warnings, [],
    'a tidy farm boots silently')
  t.match(configOf(['--farm', '--allowed', 'a.com', '--cookieSecret', 'x']).warnings,
    [/^--cookieSecret puts a secret on the command line/],
    'a secret as a flag is its one warning (test/secret-flags.test.ts)')

  const grants = t.testdir({
    'single.json': JSON.stringify({
      cookieSecret: 'x',
      plugins: { echo: { sites: ['a.com'] }, off: { sites: ['a.com'], enabled: false } },
    }),
    'default.json': JSON.stringify({
      cookieSecret: 'x',
      plugins: { echo: { sites: ['default'] }, all: { sites: '*' } },
    }),
  })
  const single = configOf(['--config', join(grants, 'single.json')]).warnings
  t.match(single, [/^plugins\.echo\.sites names hosts, but without --farm the one site is named "default"/],
    'a site list in a single-site server reaches nothing')
  t.equal(single.length, 1, 'not for a disabled plugin')
  t.same(
    configOf(['--config', join(grants, 'single.json'), '--farm', '--allowed', 'a.com']).warnings,
    [],
    'fine in a farm',
  )
  t.same(configOf(['--config', join(grants, 'default.json')]).warnings, [], 'not for "default" or "*"')
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
    [['--plugins', '{}'], /^--plugins: plugins is set in the config file \(--config FILE\) or WIKIFARM_PLUGINS$/],
    [
      ['--plugin_handler_timeout', '5'],
      /^--plugin_handler_timeout: plugin_handler_timeout is set in the config file .* or WIKIFARM_PLUGIN_HANDLER_TIMEOUT$/,
    ],
    [['--plugin_close_timeout=5'], /^--plugin_close_timeout: plugin_close_timeout is set in the config file/],
    [['--plugins_disable', ''], /^--plugins_disable: must list at least one plugin name$/],
    [['--plugins_disable', ' , '], /^--plugins_disable: must list at least one plugin name$/],
    [
      ['--plugins_disable', 'Txtzyme'],
      /^--plugins_disable: "Txtzyme" is not a plugin name \(a lowercase letter, then up to 39 of a-z, 0-9 and -\)$/,
    ],
    [['--plugins_disable', 'ok,no_underscore'], /^--plugins_disable: "no_underscore" is not a plugin name/],
    [['--plugins_farm', '9lives'], /^--plugins_farm: "9lives" is not a plugin name/],
    [['--plugins_farm', 'a'.repeat(41)], /^--plugins_farm: "a{41}" is not a plugin name/],
    [['--plugins_farm', '__proto__'], /^--plugins_farm: "__proto__" is not a plugin name/],
    [['--plugins_farm'], /^--plugins_farm: needs a value$/],
    [
      ['--plugin_timeout', '0'],
      /^--plugin_timeout: must be a whole number of milliseconds from 1 to 2147483647, got "0"$/,
    ],
    [
      ['--plugin_timeout', '2147483648'],
      /^--plugin_timeout: must be a whole number of milliseconds from 1 to 2147483647/,
    ],
    [['--plugin_timeout', '1.5'], /^--plugin_timeout: must be a whole number of milliseconds/],
    [['--plugin_timeout', '10s'], /^--plugin_timeout: must be a whole number of milliseconds/],
    [['--maxPayload', '17mb'], /^--maxPayload: must be at most 16mb \(16777216 bytes\), got "17mb"$/],
    [['--maxPayload', '16777217'], /^--maxPayload: must be at most 16mb/],
    [['--maxPayload', '1gb'], /^--maxPayload: must be at most 16mb/],
    [['--maxPayload', '0'], /^--maxPayload: must be a byte count like 5242880 or "5mb", got "0"$/],
    [['--maxPayload', 'big'], /^--maxPayload: must be a byte count/],
    [['--sendBuffer', '2gb'], /^--sendBuffer: must be at most 1gb \(1073741824 bytes\), got "2gb"$/],
    [['--sendBuffer', '-1'], /^--sendBuffer: needs a value \(write --sendBuffer=VALUE/],
    [['--sendBuffer=-1'], /^--sendBuffer: must be a byte count/],
    [['--pingSeconds', '0'], /^--pingSeconds: must be a whole number of seconds from 1 to 3600, got "0"$/],
    [['--pingSeconds', '3601'], /^--pingSeconds: must be a whole number of seconds from 1 to 3600/],
    [['--pingSeconds', '0.5'], /^--pingSeconds: must be a whole number of seconds/],
    [['--pingSeconds', 'often'], /^--pingSeconds: must be a whole number of seconds/],
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
    'plugins-array.json': '{"plugins": ["txtzyme"]}',
    'plugins-null.json': '{"plugins": null}',
    'plugin-name.json': '{"plugins": {"Txtzyme": {}}}',
    'plugin-name-path.json': '{"plugins": {"../evil": {}}}',
    'plugin-grant.json': '{"plugins": {"txtzyme": true}}',
    'plugin-key.json': '{"plugins": {"txtzyme": {"trusted": "farm"}}}',
    'plugin-key-far.json': '{"plugins": {"txtzyme": {"device": "/dev/ttyACM0"}}}',
    'plugin-proto.json': '{"plugins": {"txtzyme": {"__proto__": {"enabled": false}}}}',
    'plugin-enabled.json': '{"plugins": {"txtzyme": {"enabled": "yes"}}}',
    'plugin-trust.json': '{"plugins": {"txtzyme": {"trust": "all"}}}',
    'plugin-mode.json': '{"plugins": {"linkmap": {"mode": "per-farm"}}}',
    'plugin-trust-case.json': '{"plugins": {"txtzyme": {"trust": "Farm"}}}',
    'plugin-sites.json': '{"plugins": {"txtzyme": {"sites": "a.com"}}}',
    'plugin-sites-empty.json': '{"plugins": {"txtzyme": {"sites": []}}}',
    'plugin-sites-host.json': '{"plugins": {"txtzyme": {"sites": ["ok.com", "not a host"]}}}',
    'plugin-sites-dots.json': '{"plugins": {"txtzyme": {"sites": [".."]}}}',
    'plugin-sites-type.json': '{"plugins": {"txtzyme": {"sites": [42]}}}',
    'plugin-sites-star.json': '{"plugins": {"txtzyme": {"sites": ["*", "a.com"]}}}',
    'plugin-options.json': '{"plugins": {"txtzyme": {"options": "/dev/ttyACM0"}}}',
    'plugin-options-array.json': '{"plugins": {"txtzyme": {"options": [1]}}}',
    'plugin-package.json': '{"plugins": {"txtzyme": {"package": ""}}}',
    'plugin-package-type.json': '{"plugins": {"txtzyme": {"package": 7}}}',
    'plugin-typo.json': '{"plugin": {}}',
    'disable-type.json': '{"plugins_disable": 3}',
    'disable-name.json': '{"plugins_disable": ["ok", 5]}',
    'handler-timeout.json': '{"plugin_handler_timeout": 0}',
    'close-timeout.json': '{"plugin_close_timeout": "soon"}',
    'max-payload.json': '{"maxPayload": "32mb"}',
    'send-buffer.json': '{"sendBuffer": true}',
    'ping.json': '{"pingSeconds": -5}',
    'domain-plugins.json': '{"wikiDomains": {"a.com": {"plugins": {}}}}',
    'boolyes.json': '{"farm": "yes"}',
    'boolnum.json': '{"secure_cookie": 1}',
    'domainbool.json': '{"wikiDomains": {"a.com": {"security_legacy": "on"}}}',
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
    ['boolstr.json', /boolstr\.json key "farm": must be JSON true or false, got "sometimes"$/],
    ['boolyes.json', /boolyes\.json key "farm": must be JSON true or false, got "yes"$/],
    ['boolnum.json', /boolnum\.json key "secure_cookie": must be JSON true or false, got 1$/],
    ['domainbool.json', /key "wikiDomains" "a\.com" key "security_legacy": must be JSON true or false, got "on"$/],
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
    [
      'plugins-array.json',
      /key "plugins": must be an object \{"<plugin>": \{enabled, trust, sites, options, package, isolation, maxHeapMb, maxRssMb, allowAddons, allowRead, placement, mode\}\}, got \["txtzyme"\]$/,
    ],
    ['plugins-null.json', /key "plugins": must be an object/],
    ['plugin-name.json', /key "plugins\.Txtzyme": "Txtzyme" is not a plugin name/],
    ['plugin-name-path.json', /key "plugins\.\.\.\/evil": "\.\.\/evil" is not a plugin name/],
    [
      'plugin-grant.json',
      /key "plugins\.txtzyme": must be an object with any of enabled, trust, sites, options, package, isolation, maxHeapMb, maxRssMb, allowAddons, allowRead, placement, mode, got true$/,
    ],
    ['plugin-key.json', /key "plugins\.txtzyme\.trusted": unknown key; did you mean "trust"\?$/],
    [
      'plugin-key-far.json',
      /key "plugins\.txtzyme\.device": unknown key \(a plugin's grant has enabled, trust, sites, options, package, isolation, maxHeapMb, maxRssMb, allowAddons, allowRead, placement, mode\)$/,
    ],
    ['plugin-proto.json', /plugin-proto\.json: the config file is not valid JSON: .*prototype/i],
    ['plugin-enabled.json', /key "plugins\.txtzyme\.enabled": must be true or false, got "yes"$/],
    ['plugin-trust.json', /key "plugins\.txtzyme\.trust": must be "farm" or "site", got "all"$/],
    ['plugin-mode.json', /key "plugins\.linkmap\.mode": must be "shared" or "per-site", got "per-farm"$/],
    ['plugin-trust-case.json', /key "plugins\.txtzyme\.trust": must be "farm" or "site", got "Farm"$/],
    ['plugin-sites.json', /key "plugins\.txtzyme\.sites": must be "\*" or an array of host names, got "a\.com"$/],
    [
      'plugin-sites-empty.json',
      /key "plugins\.txtzyme\.sites": must list at least one host name, or be "\*" \(to serve no site, set "enabled": false\)$/,
    ],
    ['plugin-sites-host.json', /key "plugins\.txtzyme\.sites": "not a host" is not a host name$/],
    ['plugin-sites-dots.json', /key "plugins\.txtzyme\.sites": "\.\." is not a host name$/],
    ['plugin-sites-type.json', /key "plugins\.txtzyme\.sites": list entries must be host names, got 42$/],
    ['plugin-sites-star.json', /key "plugins\.txtzyme\.sites": "\*" stands alone: write "sites": "\*"$/],
    [
      'plugin-options.json',
      /key "plugins\.txtzyme\.options": must be a JSON object of the plugin's options, got "\/dev\/ttyACM0"$/,
    ],
    ['plugin-options-array.json', /key "plugins\.txtzyme\.options": must be a JSON object/],
    ['plugin-package.json', /key "plugins\.txtzyme\.package": must not be empty$/],
    ['plugin-package-type.json', /key "plugins\.txtzyme\.package": must be a string, got 7$/],
    ['plugin-typo.json', /key "plugin": unknown key; did you mean "plugins"\?$/],
    ['disable-type.json', /key "plugins_disable": must be a comma-separated list, got 3$/],
    ['disable-name.json', /key "plugins_disable": list entries must be strings, got 5$/],
    [
      'handler-timeout.json',
      /key "plugin_handler_timeout": must be a whole number of milliseconds from 1 to 2147483647, got 0$/,
    ],
    ['close-timeout.json', /key "plugin_close_timeout": must be a whole number of milliseconds/],
    ['max-payload.json', /key "maxPayload": must be at most 16mb \(16777216 bytes\), got "32mb"$/],
    ['send-buffer.json', /key "sendBuffer": must be a byte count like 5242880 or "5mb", got true$/],
    ['ping.json', /key "pingSeconds": must be a whole number of seconds from 1 to 3600, got -5$/],
    ['domain-plugins.json', /key "wikiDomains" "a\.com" key "plugins": is farm-wide/],
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
    if (run.child.exitCode !== null)
      throw new Error(`wikifarm exited ${run.child.exitCode}: ${run.stderr}${run.stdout}`)
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

/** The farm's own log lines; a plugin's lines (e.g. "no device attached") carry `plugin`. */
function logLines(stdout: string): { level: number; msg: string }[] {
  return stdout.split('\n').filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string; plugin?: string })
    .filter((l) => l.plugin === undefined)
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
    [
      ['--security_type', 'passportjs'],
      /^wikifarm: --security_type: only "friends" security is supported, got "passportjs"\n$/,
    ],
    [
      ['--config', join(dir, 'nope.json')],
      /^wikifarm: --config .*nope\.json: cannot read the config file: no such file\n$/,
    ],
    [
      ['--config', join(dir, 'bad.json')],
      /^wikifarm: --config .*bad\.json: the config file is not valid JSON: [^\n]*\n$/,
    ],
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
  t.match(
    logLines(run.stdout),
    [{ level: 40, msg: /no cookieSecret configured/ }],
    'the random-secret warning is logged',
  )

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
