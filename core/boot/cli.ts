// Operator flags, a JSON config file and WIKIFARM_* variables ─▶ one complete, validated
// FarmConfig. Flags win over the file, the file over the environment, and that over DEFAULTS.
// Every bad input throws WIKIFARM_ERR_CONFIG with a one-line message naming where it came from.
import { parseArgs } from 'node:util'
import { readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { VERSION } from '../package-info.js'
import secureJson from 'secure-json-parse'
import { DEFAULTS, type FarmConfig, type WikiDomain } from '../farm-config.js'
import type { PluginGrant } from '../farm-config.js'
import { isSlug } from '../../schemas/page.js'
import { normalizeHost, stripWww } from '../http/site-router.js'
import { ERR_CONFIG } from '../errors.js'
import { suggestion } from '../did-you-mean.js'
import { storeUrlProblem } from '../pages/store-url.js'

export type CliResult =
  | { config: FarmConfig; warnings: string[] }
  | { help: string }
  | { version: string }

/**
 * What one layer (flags, file or environment) says; later layers fill what earlier ones left.
 * The plugin shortcuts (--plugins_disable, --plugins_farm) are kept apart and merged into
 * `plugins` at the end.
 */
type Settings = Partial<Omit<FarmConfig, 'cookieSecretIsRandom'> & { pluginsDisabled: string[]; pluginsFarm: string[] }>

type LogLevel = FarmConfig['logLevel']

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
const MIB = 1024 * 1024
const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1024, mb: MIB, gb: 1024 * MIB }
/** Plugin names, as the registry checks them: they become the path /plugin/<name>. */
const PLUGIN_NAME = /^[a-z][a-z0-9-]{0,39}$/
const GRANT_KEYS: readonly (keyof PluginGrant)[] = [
  'enabled', 'trust', 'sites', 'options', 'package', 'isolation', 'maxHeapMb', 'maxRssMb', 'allowAddons', 'allowRead',
  'placement', 'mode',
]
/** Node's timers fire at once beyond this many milliseconds. */
const MAX_TIMER_MS = 2 ** 31 - 1
const MAX_PAYLOAD = 16 * MIB
const MAX_SEND_BUFFER = 1024 * MIB
const MAX_PING_SECONDS = 3600
const MAX_TIMEOUT_SECONDS = 86400
const TIMEOUT_RANGE = `(above 0, at most ${MAX_TIMEOUT_SECONDS})`


// ─── value parsers: (value, where) ─▶ typed value, or a one-line error ──────────────────────

function show(value: unknown): string {
  let text: string
  try {
    text = typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value)
  } catch {
    text = String(value)
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

function fail(where: string, reason: string): never {
  throw new ERR_CONFIG(`${where}: ${reason}`.replace(/\s*[\r\n]+\s*/g, ' '))
}

function text(value: unknown, where: string): string {
  if (typeof value !== 'string') fail(where, `must be a string, got ${show(value)}`)
  if (value.trim() === '') fail(where, 'must not be empty')
  return value
}

function bool(value: unknown, where: string): boolean {
  if (typeof value === 'boolean') return value
  if (typeof value === 'string') {
    const v = value.trim().toLowerCase()
    if (['true', '1', 'yes', 'on'].includes(v)) return true
    if (['false', '0', 'no', 'off'].includes(v)) return false
  }
  return fail(where, `must be true or false, got ${show(value)}`)
}

/** A finite number ≥ 0 from a JSON number or a plain decimal string. */
function decimal(value: unknown, where: string, what: string): number {
  const n = typeof value === 'number' ? value
    : typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : NaN
  if (!Number.isFinite(n) || n < 0) fail(where, `must be ${what}, got ${show(value)}`)
  return n
}

function whole(value: unknown, where: string, what: string): number {
  const n = decimal(value, where, what)
  if (!Number.isSafeInteger(n)) fail(where, `must be ${what}, got ${show(value)}`)
  return n
}

function port(value: unknown, where: string): number {
  const what = 'a port number from 0 to 65535'
  const n = whole(value, where, what)
  if (n > 65535) fail(where, `must be ${what}, got ${show(value)}`)
  return n
}

function positive(value: unknown, where: string, what: string): number {
  const n = decimal(value, where, what)
  if (n <= 0) fail(where, `must be ${what}, got ${show(value)}`)
  return n
}

/** Bytes, as a count (5242880) or with a unit like the reference's "5mb" (kb, mb, gb: powers of 1024). */
function bytes(value: unknown, where: string): number {
  const what = 'a byte count like 5242880 or "5mb"'
  let n = NaN
  if (typeof value === 'number') n = value
  else if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?b)?\s*$/i.exec(value)
    if (m) n = Number(m[1]) * (BYTE_UNITS[(m[2] ?? '').toLowerCase()] ?? NaN)
  }
  n = Math.floor(n)
  if (!Number.isSafeInteger(n) || n < 1) fail(where, `must be ${what}, got ${show(value)}`)
  return n
}

/** bytes(), with an upper bound given as a size like "16mb". */
function bytesAtMost(value: unknown, where: string, max: number, maxShown: string): number {
  const n = bytes(value, where)
  if (n > max) fail(where, `must be at most ${maxShown} (${max} bytes), got ${show(value)}`)
  return n
}

/** A whole number of milliseconds a timer can wait: 1 to 2147483647. */
function millis(value: unknown, where: string): number {
  const what = `a whole number of milliseconds from 1 to ${MAX_TIMER_MS}`
  const n = whole(value, where, what)
  if (n < 1 || n > MAX_TIMER_MS) fail(where, `must be ${what}, got ${show(value)}`)
  return n
}

/** Seconds for a connection deadline: above 0 (fractions allowed), at most a day. */
function timeoutSeconds(value: unknown, where: string): number {
  const what = `a number of seconds above 0 and at most ${MAX_TIMEOUT_SECONDS}`
  const n = positive(value, where, what)
  if (n > MAX_TIMEOUT_SECONDS) fail(where, `must be ${what}, got ${show(value)}`)
  return n
}

function pingSeconds(value: unknown, where: string): number {
  const what = `a whole number of seconds from 1 to ${MAX_PING_SECONDS}`
  const n = whole(value, where, what)
  if (n < 1 || n > MAX_PING_SECONDS) fail(where, `must be ${what}, got ${show(value)}`)
  return n
}

/** A comma-separated string, or (in the config file) an array of strings. Blank entries are dropped. */
function list(value: unknown, where: string): string[] {
  let items: unknown[]
  if (typeof value === 'string') items = value.split(',')
  else if (Array.isArray(value)) items = value
  else return fail(where, `must be a comma-separated list, got ${show(value)}`)
  const out: string[] = []
  for (const item of items) {
    if (typeof item !== 'string') fail(where, `list entries must be strings, got ${show(item)}`)
    if (item.trim() !== '') out.push(item.trim())
  }
  return out
}

function hostName(value: string, where: string): string {
  try {
    return normalizeHost(value)
  } catch {
    return fail(where, `${show(value)} is not a host name`)
  }
}

function allowedHosts(value: unknown, where: string): string[] {
  const items = list(value, where)
  if (items.length === 0) fail(where, 'must list at least one host name, or * for the existing site folders')
  const hosts = items.map((item) => (item === '*' ? '*' : stripWww(hostName(item, where))))
  return [...new Set(hosts)]
}

function origins(value: unknown, where: string): string[] {
  return [...new Set(list(value, where).map((item) => {
    let url: URL | null = null
    try {
      url = new URL(item)
    } catch {
      // reported below
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' ||
      url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
      return fail(where, `${show(item)} is not an origin like https://example.com`)
    }
    return url.origin
  }))]
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/**
 * Where a value inside an object-valued setting came from, naming its key path:
 * `farm.json key "plugins"` ─▶ `farm.json key "plugins.echo.trust"`;
 * `WIKIFARM_PLUGINS` ─▶ `WIKIFARM_PLUGINS key "plugins.echo.trust"`.
 */
function keyPath(where: string, key: string, path: string): string {
  const top = `key "${key}"`
  return where.endsWith(top) ? `${where.slice(0, -1)}.${path}"` : `${where} key "${key}.${path}"`
}

function pluginName(name: unknown, where: string): string {
  if (typeof name !== 'string' || !PLUGIN_NAME.test(name)) {
    fail(where, `${show(name)} is not a plugin name (a lowercase letter, then up to 39 of a-z, 0-9 and -)`)
  }
  return name
}

/** A comma list (or, in the file, an array) of plugin names: the shortcut flags. */
function pluginNames(value: unknown, where: string): string[] {
  const names = list(value, where)
  if (names.length === 0) fail(where, 'must list at least one plugin name')
  return [...new Set(names.map((name) => pluginName(name, where)))]
}

function pluginSites(value: unknown, where: string): string[] | '*' {
  if (value === '*') return '*'
  if (!Array.isArray(value)) return fail(where, `must be "*" or an array of host names, got ${show(value)}`)
  if (value.length === 0)
    fail(where, 'must list at least one host name, or be "*" (to serve no site, set "enabled": false)')
  const hosts = value.map((item: unknown) => {
    if (typeof item !== 'string') return fail(where, `list entries must be host names, got ${show(item)}`)
    if (item.trim() === '*') return fail(where, '"*" stands alone: write "sites": "*"')
    return stripWww(hostName(item.trim(), where))
  })
  return [...new Set(hosts)]
}

/** The config key `plugins`: {"<plugin>": {enabled?, trust?, sites?, options?, package?}}, checked strictly. */
function pluginGrants(value: unknown, where: string): Record<string, PluginGrant> {
  if (!isObject(value)) fail(where, `must be an object {"<plugin>": {${GRANT_KEYS.join(', ')}}}, got ${show(value)}`)
  const out: Record<string, PluginGrant> = {}
  for (const [name, raw] of Object.entries(value)) {
    const at = keyPath(where, 'plugins', name)
    pluginName(name, at)
    if (!isObject(raw)) fail(at, `must be an object with any of ${GRANT_KEYS.join(', ')}, got ${show(raw)}`)
    const grant: PluginGrant = {}
    for (const [key, v] of Object.entries(raw)) {
      const field = keyPath(where, 'plugins', `${name}.${key}`)
      switch (key) {
        case 'enabled':
          if (typeof v !== 'boolean') fail(field, `must be true or false, got ${show(v)}`)
          grant.enabled = v
          break
        case 'trust':
          if (v !== 'farm' && v !== 'site') fail(field, `must be "farm" or "site", got ${show(v)}`)
          grant.trust = v
          break
        case 'sites':
          grant.sites = pluginSites(v, field)
          break
        case 'options':
          if (!isObject(v)) fail(field, `must be a JSON object of the plugin's options, got ${show(v)}`)
          grant.options = v
          break
        case 'package':
          grant.package = text(v, field).trim()
          break
        case 'isolation':
          if (v !== 'none' && v !== 'worker' && v !== 'process')
            fail(field, `must be "none", "worker" or "process", got ${show(v)}`)
          grant.isolation = v
          break
        case 'maxHeapMb':
          if (typeof v !== 'number' || !Number.isInteger(v) || v < 16 || v > 16384)
            fail(field, `must be a whole number of MiB from 16 to 16384, got ${show(v)}`)
          grant.maxHeapMb = v
          break
        case 'maxRssMb':
          if (typeof v !== 'number' || !Number.isInteger(v) || v < 32 || v > 65536) {
            fail(field, `must be a whole number of MiB from 32 to 65536, got ${show(v)}`)
          }
          grant.maxRssMb = v
          break
        case 'allowAddons':
          if (typeof v !== 'boolean') fail(field, `must be true or false, got ${show(v)}`)
          grant.allowAddons = v
          break
        case 'allowRead':
          if (!Array.isArray(v) || !v.every((path) => typeof path === 'string' && path.startsWith('/')))
            fail(field, `must be a list of absolute paths, got ${show(v)}`)
          grant.allowRead = v as string[]
          break
        case 'placement':
          if (v !== 'every-node' && v !== 'one-node') fail(field, `must be "every-node" or "one-node", got ${show(v)}`)
          grant.placement = v
          break
        case 'mode':
          if (v !== 'shared' && v !== 'per-site') fail(field, `must be "shared" or "per-site", got ${show(v)}`)
          grant.mode = v
          break
        default: {
          const hint = suggestion(key, GRANT_KEYS, '')
          fail(
            field,
            hint
              ? `unknown key; did you mean "${hint}"?`
              : `unknown key (a plugin's grant has ${GRANT_KEYS.join(', ')})`,
          )
        }
      }
    }
    out[name] = grant
  }
  return out
}

/** `plugins`, with the shortcut lists applied on top: a shortcut adds to or overrides a grant. */
function mergeGrants(
  grants: Record<string, PluginGrant>,
  disabled: string[] = [],
  farm: string[] = [],
): Record<string, PluginGrant> {
  const out: Record<string, PluginGrant> = {}
  for (const [name, grant] of Object.entries(grants)) out[name] = { ...grant }
  for (const name of disabled) out[name] = { ...out[name], enabled: false }
  for (const name of farm) out[name] = { ...out[name], trust: 'farm' }
  return out
}

function logLevel(value: unknown, where: string): LogLevel {
  const level = typeof value === 'string' ? value.trim().toLowerCase() : value
  const found = LOG_LEVELS.find((l) => l === level)
  if (!found) fail(where, `must be one of ${LOG_LEVELS.join(', ')}, got ${show(value)}`)
  return found
}

function legacyIsolation(value: unknown, where: string): 'process' | 'none' {
  if (value !== 'process' && value !== 'none') fail(where, `must be "process" or "none", got ${show(value)}`)
  return value
}

function securityType(value: unknown, where: string): 'friends' {
  if (value !== 'friends') fail(where, `only "friends" security is supported, got ${show(value)}`)
  return 'friends'
}

function home(value: unknown, where: string): string {
  const slug = text(value, where)
  if (!isSlug(slug)) fail(where, `must be a page slug (a-z, 0-9 and -), got ${show(value)}`)
  return slug
}

/** A PostgreSQL URL; errors never quote it, since it holds a password. */
function storeUrl(value: unknown, where: string): string {
  if (typeof value !== 'string' || value.trim() === '') fail(where, 'must be a postgres:// URL')
  const problem = storeUrlProblem(value.trim())
  if (problem) fail(where, problem)
  return value.trim()
}

/** A node's address for the farm's other nodes: http(s)://host[:port], no path, no credentials. */
function nodeUrl(value: unknown, where: string): string {
  const raw = text(value, where).trim()
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return fail(where, `must be a URL such as http://10.0.0.5:3000, got ${show(value)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(where, `must be an http:// or https:// URL, got ${show(value)}`)
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== ''))
    fail(where, `must be only scheme, host and port (no path, query or credentials), got ${show(value)}`)
  return url.origin
}

// ─── the settings table: every flag and config key, its parser, its help line ───────────────

interface Setting {
  /** How parseArgs reads the flag; null: config file and environment only. */
  flag: 'string' | 'boolean' | null
  short?: string
  /** The placeholder shown in --help for a flag's value. */
  arg?: string
  help: string
  /** The default as shown in --help. */
  shown: string
  /** May a wikiDomains entry override it for its domain? */
  perDomain?: boolean
  /** Its environment variable holds JSON (an object-valued key). */
  json?: boolean
  /** A secret: accepted as a flag, with a warning, since any local user reads a command line. */
  secret?: boolean
  assign(into: Settings, value: unknown, where: string): void
}

const SETTINGS: Record<string, Setting> = {
  port: {
    flag: 'string', short: 'p', arg: 'N', shown: String(DEFAULTS.port),
    help: 'TCP port to listen on (0: any free port)',
    assign: (s, v, w) => { s.port = port(v, w) },
  },
  host: {
    flag: 'string', short: 'o', arg: 'ADDR', shown: DEFAULTS.host,
    help: 'address to listen on (127.0.0.1: this machine only)',
    assign: (s, v, w) => { s.host = text(v, w).trim() },
  },
  metricsPort: {
    flag: 'string', arg: 'N', shown: 'off',
    help: 'serve Prometheus metrics on this port, at /metrics (docs/operators.md#metrics)',
    assign: (s, v, w) => { s.metricsPort = port(v, w) },
  },
  metricsHost: {
    flag: 'string', arg: 'ADDR', shown: DEFAULTS.metricsHost,
    help: 'address of the metrics port (127.0.0.1: this machine only)',
    assign: (s, v, w) => { s.metricsHost = text(v, w).trim() },
  },
  data: {
    flag: 'string', short: 'd', arg: 'DIR', shown: DEFAULTS.data,
    help: 'data folder: the site itself, or with --farm the parent of one folder per host',
    assign: (s, v, w) => { s.data = text(v, w) },
  },
  farm: {
    flag: 'boolean', short: 'f', shown: String(DEFAULTS.farm),
    help: 'serve one wiki per Host name, each in <data>/<host>/',
    assign: (s, v, w) => { s.farm = bool(v, w) },
  },
  store: {
    flag: 'string', arg: 'URL', shown: 'files in the data folder', secret: true,
    help: 'keep pages in PostgreSQL instead: postgres://user:password@host:5432/database (docs/scale-out.md)',
    assign: (s, v, w) => { s.store = v === null ? null : storeUrl(v, w) },
  },
  allowed: {
    flag: 'string', arg: 'HOSTS', shown: 'none',
    help: 'farm: comma list of hosts served, or * for the site folders in <data>; ' +
      'with neither this nor wikiDomains, every host is served',
    assign: (s, v, w) => { s.allowed = allowedHosts(v, w) },
  },
  wikiDomains: {
    flag: null, json: true, shown: '{}',
    help: 'farm: {"<domain>": {per-domain settings}}; the domain and its subdomains are served',
    assign: (s, v, w) => { s.wikiDomains = wikiDomains(v, w) },
  },
  security_type: {
    flag: 'string', arg: 'TYPE', shown: DEFAULTS.security_type, perDomain: true,
    help: 'ownership scheme; only friends (claim with a secret) is supported',
    assign: (s, v, w) => { s.security_type = securityType(v, w) },
  },
  cookieSecret: {
    flag: 'string', arg: 'SECRET', shown: 'random at each start', perDomain: true, secret: true,
    help: 'key that signs session cookies; set it so logins survive a restart',
    assign: (s, v, w) => { s.cookieSecret = text(v, w) },
  },
  admin: {
    flag: 'string', arg: 'SECRET', shown: 'none', perDomain: true, secret: true,
    help: 'friend secret of the farm administrator, who may change every site',
    assign: (s, v, w) => { s.admin = v === null ? null : text(v, w) },
  },
  home: {
    flag: 'string', arg: 'SLUG', shown: DEFAULTS.home, perDomain: true,
    help: 'page that / redirects to',
    assign: (s, v, w) => { s.home = home(v, w) },
  },
  neighbors: {
    flag: 'string', arg: 'SITES', shown: 'none', perDomain: true,
    help: 'comma-separated sites every page starts with in its neighborhood',
    assign: (s, v, w) => { s.neighbors = text(v, w).split(',').map((n) => n.trim()).filter((n) => n !== '').join(',') },
  },
  security_legacy: {
    flag: 'boolean', shown: String(DEFAULTS.security_legacy), perDomain: true,
    help: 'let any visitor edit sites that nobody has claimed',
    assign: (s, v, w) => { s.security_legacy = bool(v, w) },
  },
  secure_cookie: {
    flag: 'boolean', shown: String(DEFAULTS.secure_cookie), perDomain: true,
    help: 'mark the session cookie Secure (HTTPS only; set it behind a TLS proxy)',
    assign: (s, v, w) => { s.secure_cookie = bool(v, w) },
  },
  session_duration: {
    flag: 'string', arg: 'DAYS', shown: String(DEFAULTS.session_duration), perDomain: true,
    help: 'lifetime of the session cookie, in days',
    assign: (s, v, w) => { s.session_duration = positive(v, w, 'a number of days above 0') },
  },
  uploadLimit: {
    flag: 'string', arg: 'SIZE', shown: '5mb',
    help: 'largest request body: bytes, or with a unit (kb, mb, gb)',
    assign: (s, v, w) => { s.uploadLimit = bytes(v, w) },
  },
  itemLimit: {
    flag: 'string', arg: 'SIZE', shown: '4mb',
    help: 'largest story item an action may bring, in bytes of JSON or with a unit; a bigger one is refused (413)',
    assign: (s, v, w) => { s.itemLimit = bytes(v, w) },
  },
  pageLimit: {
    flag: 'string', arg: 'SIZE', shown: '16mb',
    help: 'largest page, journal included, in bytes of JSON: old journal entries lose their items to stay under it, ' +
      'and a story bigger than it is refused (413)',
    assign: (s, v, w) => { s.pageLimit = bytes(v, w) },
  },
  actionLimit: {
    flag: 'string', arg: 'SIZE', shown: '5mb',
    help: 'largest journal action (PUT /page/:slug/action), in bytes of JSON; a bigger one is refused (413)',
    assign: (s, v, w) => { s.actionLimit = bytes(v, w) },
  },
  idleSeconds: {
    flag: 'string', arg: 'N', shown: String(DEFAULTS.idleSeconds),
    help: 'close a site after this many seconds without requests (0: never)',
    assign: (s, v, w) => { s.idleSeconds = whole(v, w, 'a whole number of seconds (0 or more)') },
  },
  cacheMB: {
    flag: 'string', arg: 'MB', shown: String(DEFAULTS.cacheBytes / MIB),
    help: 'memory for the hot-page cache, shared by all sites, in MiB',
    assign: (s, v, w) => { s.cacheBytes = Math.max(1, Math.round(positive(v, w, 'a number of MiB above 0') * MIB)) },
  },
  origins: {
    flag: 'string', arg: 'URLS', shown: 'none',
    help: 'comma list of extra origins allowed to send changes (each site\'s own always is)',
    assign: (s, v, w) => { s.origins = origins(v, w) },
  },
  trustProxy: {
    flag: 'boolean', shown: String(DEFAULTS.trustProxy),
    help: 'trust X-Forwarded-* headers (Host, protocol, client address) from a reverse proxy',
    assign: (s, v, w) => { s.trustProxy = bool(v, w) },
  },
  nodeUrl: {
    flag: 'string', arg: 'URL', shown: 'http://<host>:<port>',
    help: 'with --store: where the farm\'s other nodes reach this one (forwarded one-node plugins)',
    assign: (s, v, w) => { s.nodeUrl = v === null ? null : nodeUrl(v, w) },
  },
  pluginForwarding: {
    flag: 'boolean', shown: String(DEFAULTS.pluginForwarding),
    help: 'with --store: forward a one-node plugin\'s requests to its owner node (false: 503 naming it)',
    assign: (s, v, w) => { s.pluginForwarding = bool(v, w) },
  },
  legacyPlugins: {
    flag: 'boolean', shown: String(DEFAULTS.legacyPlugins),
    help: 'start the server parts of installed wiki-plugin-* packages (image upload, assets, plugmatic), '
      + 'in one child process of the farm\'s (see --legacyIsolation; docs/operators.md)',
    assign: (s, v, w) => { s.legacyPlugins = bool(v, w) },
  },
  legacyIsolation: {
    flag: 'string', arg: 'MODE', shown: DEFAULTS.legacyIsolation,
    help: 'where legacy server parts run: "process" (one child process for them all) or "none" (the farm\'s thread)',
    assign: (s, v, w) => { s.legacyIsolation = legacyIsolation(v, w) },
  },
  logLevel: {
    flag: 'string', arg: 'LEVEL', shown: DEFAULTS.logLevel,
    help: `log level: ${LOG_LEVELS.join(', ')}`,
    assign: (s, v, w) => { s.logLevel = logLevel(v, w) },
  },
  plugins: {
    flag: null, json: true, shown: '{}',
    help: `{"<plugin>": {${GRANT_KEYS.join(', ')}}}: the operator's grant for each server-side plugin`,
    assign: (s, v, w) => { s.plugins = pluginGrants(v, w) },
  },
  plugins_disable: {
    flag: 'string', arg: 'LIST', shown: 'none',
    help: 'comma list of server-side plugins not to launch (sets "enabled": false in their grant)',
    assign: (s, v, w) => { s.pluginsDisabled = pluginNames(v, w) },
  },
  plugins_farm: {
    flag: 'string', arg: 'LIST', shown: 'none',
    help: 'comma list of plugins granted farm trust: every site\'s pages and events ' +
      '(sets "trust": "farm" in their grant)',
    assign: (s, v, w) => { s.pluginsFarm = pluginNames(v, w) },
  },
  plugin_timeout: {
    flag: 'string', arg: 'MS', shown: String(DEFAULTS.pluginLaunchTimeoutMs),
    help: 'milliseconds a plugin\'s launch may take before it is marked failed',
    assign: (s, v, w) => { s.pluginLaunchTimeoutMs = millis(v, w) },
  },
  plugin_handler_timeout: {
    flag: null, shown: String(DEFAULTS.pluginHandlerTimeoutMs),
    help: 'milliseconds a plugin\'s REST handler may take before the request answers 504',
    assign: (s, v, w) => { s.pluginHandlerTimeoutMs = millis(v, w) },
  },
  plugin_close_timeout: {
    flag: null, shown: String(DEFAULTS.pluginCloseTimeoutMs),
    help: 'milliseconds a plugin\'s close may take at shutdown or relaunch',
    assign: (s, v, w) => { s.pluginCloseTimeoutMs = millis(v, w) },
  },
  plugin_heartbeat_timeout: {
    flag: null, shown: String(DEFAULTS.pluginHeartbeatTimeoutMs),
    help: 'milliseconds an isolated plugin may leave a heartbeat unanswered (a blocked event loop) ' +
      'before it is ended and restarted',
    assign: (s, v, w) => { s.pluginHeartbeatTimeoutMs = millis(v, w) },
  },
  plugin_restart_limit: {
    flag: null, shown: String(DEFAULTS.pluginRestartLimit),
    help: 'crashes in a row after which an isolated plugin stays failed until the admin relaunches it',
    assign: (s, v, w) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 1000)
        fail(w, `must be a whole number from 1 to 1000, got ${show(v)}`)
      s.pluginRestartLimit = v
    },
  },
  maxPayload: {
    flag: 'string', arg: 'SIZE', shown: '1mb',
    help: 'largest incoming websocket message: bytes, or with a unit (kb, mb), at most 16mb; ' +
      'a bigger one closes the socket (1009)',
    assign: (s, v, w) => { s.maxPayload = bytesAtMost(v, w, MAX_PAYLOAD, '16mb') },
  },
  sendBuffer: {
    flag: 'string', arg: 'SIZE', shown: '4mb',
    help: 'bytes queued for one websocket client before it is dropped as a slow reader (1013), at most 1gb',
    assign: (s, v, w) => { s.sendBufferBytes = bytesAtMost(v, w, MAX_SEND_BUFFER, '1gb') },
  },
  pingSeconds: {
    flag: 'string', arg: 'N', shown: String(DEFAULTS.pingIntervalSeconds),
    help: `websocket heartbeat: ping every N seconds (1 to ${MAX_PING_SECONDS}); a peer that misses a pong is cut off`,
    assign: (s, v, w) => { s.pingIntervalSeconds = pingSeconds(v, w) },
  },
  loginRate: {
    flag: 'string', arg: 'N', shown: String(DEFAULTS.loginRate),
    help: 'login attempts (POST /auth/reclaim/) a minute per client address, then 429 (0: no limit)',
    assign: (s, v, w) => { s.loginRate = whole(v, w, 'a whole number a minute (0: no limit)') },
  },
  claimRate: {
    flag: 'string', arg: 'N', shown: String(DEFAULTS.claimRate),
    help: 'claims (POST /login) a minute per client address, then 429 (0: no limit)',
    assign: (s, v, w) => { s.claimRate = whole(v, w, 'a whole number a minute (0: no limit)') },
  },
  editRate: {
    flag: 'string', arg: 'N', shown: String(DEFAULTS.editRate),
    help: 'edits (PUT /page/:slug/action) a minute per client address, then 429 (0: no limit)',
    assign: (s, v, w) => { s.editRate = whole(v, w, 'a whole number a minute (0: no limit)') },
  },
  upgradeRate: {
    flag: 'string', arg: 'N', shown: String(DEFAULTS.upgradeRate),
    help: 'websocket connections opened a minute per client address, then 429 (0: no limit)',
    assign: (s, v, w) => { s.upgradeRate = whole(v, w, 'a whole number a minute (0: no limit)') },
  },
  socketsPerIp: {
    flag: 'string', arg: 'N', shown: String(DEFAULTS.socketsPerIp),
    help: 'open websockets per client address; more are refused with 429 (0: no cap)',
    assign: (s, v, w) => { s.socketsPerIp = whole(v, w, 'a whole number of connections (0: no cap)') },
  },
  socketsPerSite: {
    flag: 'string', arg: 'N', shown: String(DEFAULTS.socketsPerSite),
    help: 'open websockets per site; more are refused with 429 (0: no cap)',
    assign: (s, v, w) => { s.socketsPerSite = whole(v, w, 'a whole number of connections (0: no cap)') },
  },
  connectionsPerIp: {
    flag: 'string', arg: 'N', shown: String(DEFAULTS.connectionsPerIp),
    help: 'open HTTP connections (websockets included) per client address; more are answered 429 and closed at once ' +
      '(0: no cap; not applied with trustProxy, where every connection comes from the proxy)',
    assign: (s, v, w) => { s.connectionsPerIp = whole(v, w, 'a whole number of connections (0: no cap)') },
  },
  readRate: {
    flag: 'string', arg: 'N', shown: String(DEFAULTS.readRate),
    help: 'reads (GET, HEAD) a minute per client address, then 429 (0: no limit)',
    assign: (s, v, w) => { s.readRate = whole(v, w, 'a whole number a minute (0: no limit)') },
  },
  headerSeconds: {
    flag: 'string', arg: 'N', shown: String(DEFAULTS.headerSeconds),
    help: `seconds a client may take to send a request's headers, then the connection is closed ${TIMEOUT_RANGE}`,
    assign: (s, v, w) => { s.headerSeconds = timeoutSeconds(v, w) },
  },
  requestSeconds: {
    flag: 'string', arg: 'N', shown: String(DEFAULTS.requestSeconds),
    help: `seconds a client may take to send a whole request, body included, then 408 ${TIMEOUT_RANGE}`,
    assign: (s, v, w) => { s.requestSeconds = timeoutSeconds(v, w) },
  },
  keepAliveSeconds: {
    flag: 'string', arg: 'N', shown: String(DEFAULTS.keepAliveSeconds),
    help: `seconds an idle keep-alive connection stays open between requests ${TIMEOUT_RANGE}`,
    assign: (s, v, w) => { s.keepAliveSeconds = timeoutSeconds(v, w) },
  },
  socketIdleSeconds: {
    flag: 'string', arg: 'N', shown: String(DEFAULTS.socketIdleSeconds),
    help: 'seconds an HTTP connection may stay silent both ways before it is closed; ' +
      `websockets have their ping ${TIMEOUT_RANGE}`,
    assign: (s, v, w) => { s.socketIdleSeconds = timeoutSeconds(v, w) },
  },
}

/**
 * Options of the reference farm that mean nothing here (its own paths, client and seeding):
 * accepted so its config files and command lines keep working, and reported as ignored.
 */
const IGNORED: Record<string, { flag: 'string' | 'boolean'; short?: string }> = {
  url: { flag: 'string', short: 'u' },
  root: { flag: 'string', short: 'r' },
  packageDir: { flag: 'string' },
  client: { flag: 'string' },
  db: { flag: 'string' },
  status: { flag: 'string' },
  assets: { flag: 'string' },
  recycler: { flag: 'string' },
  commons: { flag: 'string' },
  id: { flag: 'string' },
  autoseed: { flag: 'boolean' },
  debug: { flag: 'boolean' },
}

/** Reference options that change behaviour we do not have: refused rather than ignored. */
const REFUSED: Record<string, string> = {
  test: 'the reference farm\'s test mode is not supported',
  database: 'only the file store (<data>/<host>/pages/) is supported here; for PostgreSQL set "store" to its URL',
}

function wikiDomains(value: unknown, where: string): Record<string, WikiDomain> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail(where, `must be an object {"<domain>": {settings}}, got ${show(value)}`)
  }
  const out: Record<string, WikiDomain> = {}
  for (const [rawDomain, overrides] of Object.entries(value)) {
    const at = `${where} "${rawDomain}"`
    const domain = hostName(rawDomain, at)
    if (Object.hasOwn(out, domain)) fail(at, `repeats the domain ${domain}`)
    if (overrides === null || typeof overrides !== 'object' || Array.isArray(overrides)) {
      fail(at, `must be an object of per-domain settings, got ${show(overrides)}`)
    }
    const entry: WikiDomain = {}
    for (const [key, v] of Object.entries(overrides)) {
      const setting = Object.hasOwn(SETTINGS, key) ? SETTINGS[key] : undefined
      if (setting && !setting.perDomain) fail(`${at} key "${key}"`, 'is farm-wide: set it at the top level')
      if (!setting) {
        // The reference passes anything here to its security plugins (oauth ids and the like).
        entry[key] = v
        continue
      }
      const parsed: Settings = {}
      fileValue(setting, v, `${at} key "${key}"`)
      setting.assign(parsed, v, `${at} key "${key}"`)
      Object.assign(entry, parsed)
    }
    out[domain] = entry
  }
  return out
}

/**
 * What a wikiDomains entry holds that has no effect, reported at boot: keys that are no
 * wikifarm setting, and per-domain overrides, which the kernel does not apply yet (it uses
 * the domain names only; the farm-wide values hold on every domain).
 */
function domainWarnings(domains: Record<string, WikiDomain>): string[] {
  const warnings: string[] = []
  const quote = (keys: string[]): string => keys.map((k) => `"${k}"`).join(', ')
  for (const [domain, entry] of Object.entries(domains)) {
    const keys = Object.keys(entry)
    const unused = keys.filter((k) => !Object.hasOwn(SETTINGS, k))
    const overrides = keys.filter((k) => Object.hasOwn(SETTINGS, k))
    if (unused.length > 0) warnings.push(`wikiDomains "${domain}": ${quote(unused)} ignored (not a wikifarm setting)`)
    if (overrides.length > 0) {
      warnings.push(
        `wikiDomains "${domain}": per-domain ${quote(overrides)} not applied yet: the farm-wide values are used`,
      )
    }
  }
  return warnings
}

// ─── the three layers ───────────────────────────────────────────────────────────────────────

type FlagConfig = Record<string, { type: 'string' | 'boolean'; short?: string }>

function flagOptions(): FlagConfig {
  const options: FlagConfig = {
    config: { type: 'string' },
    conf: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'v' },
  }
  for (const [name, s] of Object.entries(SETTINGS)) {
    if (s.flag) options[name] = s.short ? { type: s.flag, short: s.short } : { type: s.flag }
  }
  for (const [name, s] of Object.entries(IGNORED))
    options[name] = s.short ? { type: s.flag, short: s.short } : { type: s.flag }
  return options
}

const FLAG_NAMES = [...Object.keys(SETTINGS).filter((k) => SETTINGS[k]?.flag), 'config', 'conf', 'help', 'version']

/** Turns parseArgs' own (sometimes multi-line) complaints into our one-line reasons. */
function flagError(err: unknown): never {
  const e = err as { code?: string; message?: string }
  const message = String(e.message ?? err)
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? ''
  const long = /--[A-Za-z0-9_-]+/.exec(quoted)?.[0] ?? quoted
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const name = long.replace(/^-+/, '').replace(/=.*$/, '')
      const fileOnly = Object.hasOwn(SETTINGS, name) ? SETTINGS[name] : undefined
      if (fileOnly && !fileOnly.flag)
        fail(long, `${name} is set in the config file (--config FILE) or ${envNames(name)[0] ?? ''}`)
      if (Object.hasOwn(REFUSED, name)) fail(long, REFUSED[name] as string)
      const hint = suggestion(name, FLAG_NAMES, '--')
      return fail(
        long || 'flags',
        hint ? `unknown flag; did you mean ${hint}?` : 'unknown flag (wikifarm --help lists them)',
      )
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(message))
        fail(long, 'takes no value (use --no-' + long.slice(2) + ' to turn it off)')
      if (/ambiguous/.test(message)) fail(long, `needs a value (write ${long}=VALUE when the value starts with -)`)
      return fail(long || 'flags', 'needs a value')
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return fail(`"${quoted}"`, 'unexpected argument: wikifarm takes only flags (wikifarm --help lists them)')
    default:
      return fail('flags', message)
  }
}

type Flags = Record<string, string | boolean | undefined>

function readFlags(argv: string[]): Flags {
  try {
    const { values } = parseArgs({
      args: argv,
      options: flagOptions(),
      strict: true,
      allowPositionals: false,
      allowNegative: true,
    })
    return values as Flags
  } catch (err) {
    return flagError(err)
  }
}

function readConfigFile(file: string, where: string): Record<string, unknown> {
  let source: string
  try {
    source = readFileSync(file, 'utf8')
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const reason = e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a folder, not a file'
      : e.code === 'EACCES' ? 'permission denied' : (e.message ?? String(err))
    return fail(`${where} ${file}`, `cannot read the config file: ${reason}`)
  }
  let value: unknown
  try {
    value = secureJson.parse(source, undefined, { protoAction: 'error', constructorAction: 'error' })
  } catch (err) {
    return fail(`${where} ${file}`, `the config file is not valid JSON: ${(err as Error).message}`)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail(`${where} ${file}`, 'the config file must hold one JSON object {"key": value, ...}')
  }
  return value as Record<string, unknown>
}

/**
 * JSON has booleans, so a config file uses them: `"farm": "yes"` is refused there, although
 * flags and environment variables, which are text, accept yes/no, on/off and 1/0.
 */
function fileValue(setting: Setting, value: unknown, where: string): void {
  if (setting.flag === 'boolean' && typeof value !== 'boolean')
    fail(where, `must be JSON true or false, got ${show(value)}`)
}

function fromFile(data: Record<string, unknown>, file: string, warnings: string[]): Settings {
  const settings: Settings = {}
  for (const [key, value] of Object.entries(data)) {
    const where = `${file} key "${key}"`
    const setting = Object.hasOwn(SETTINGS, key) ? SETTINGS[key] : undefined
    if (setting) {
      fileValue(setting, value, where)
      setting.assign(settings, value, where)
    } else if (Object.hasOwn(IGNORED, key)) {
      warnings.push(`${file}: "${key}" is a reference-farm setting that wikifarm ignores`)
    } else if (key === 'database' && isFileDatabase(value)) {
      warnings.push(`${file}: "database" names the file store, which is the only store wikifarm has`)
    } else if (Object.hasOwn(REFUSED, key)) {
      fail(where, REFUSED[key] as string)
    } else if (key === 'config' || key === 'conf') {
      fail(where, 'a config file cannot name another one')
    } else {
      const hint = suggestion(key, Object.keys(SETTINGS), '')
      fail(where, hint ? `unknown key; did you mean "${hint}"?` : 'unknown key')
    }
  }
  return settings
}

function isFileDatabase(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const type = (value as { type?: unknown }).type
  return type === undefined || type === './page.js' || type === './page'
}

/** WIKIFARM_<KEY IN UPPER SNAKE CASE>, also accepted as WIKIFARM_<KEY UPPERCASED>. */
export function envNames(key: string): string[] {
  const snake = `WIKIFARM_${key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`
  const upper = `WIKIFARM_${key.toUpperCase()}`
  return snake === upper ? [snake] : [snake, upper]
}

function envValue(env: NodeJS.ProcessEnv, key: string): { name: string; value: string } | null {
  const found = envNames(key).flatMap((name) => {
    const value = env[name]
    return value === undefined || value.trim() === '' ? [] : [{ name, value }]
  })
  const [first, second] = found
  if (first && second && first.value !== second.value)
    fail(`${first.name} and ${second.name}`, 'both set, to different values: keep one')
  return first ?? null
}

function fromEnv(env: NodeJS.ProcessEnv): Settings {
  const settings: Settings = {}
  for (const [key, setting] of Object.entries(SETTINGS)) {
    const found = envValue(env, key)
    if (!found) continue
    let value: unknown = found.value
    if (setting.json) {
      try {
        value = secureJson.parse(found.value, undefined, { protoAction: 'error', constructorAction: 'error' })
      } catch (err) {
        fail(found.name, `must be a JSON object: ${(err as Error).message}`)
      }
    }
    setting.assign(settings, value, found.name)
  }
  return settings
}

/** The warning for a secret given as a flag, naming where it belongs instead. */
export function secretFlagWarning(name: string): string {
  return `--${name} puts a secret on the command line, where other local users and processes can read it ` +
    `(ps, /proc/<pid>/cmdline): set "${name}" in the config file or ${envNames(name).join(' or ')} instead`
}

/**
 * The command line with the values of secret flags (--admin, --cookieSecret) replaced, or null
 * when it holds none. The farm shows this as its process title once it has read its flags, which
 * overwrites what /proc/<pid>/cmdline and ps show (and what a worker-thread plugin reads in
 * /proc/self/cmdline); the warning stays, since the secret was visible until then.
 */
export function redactedCommandLine(argv: readonly string[]): string | null {
  const secrets = Object.entries(SETTINGS).filter(([, s]) => s.secret).map(([name]) => `--${name}`)
  let redacted = false
  const out = argv.map((arg, i) => {
    if (secrets.some((flag) => arg.startsWith(`${flag}=`))) {
      redacted = true
      return `${arg.slice(0, arg.indexOf('='))}=***`
    }
    if (i > 0 && secrets.includes(argv[i - 1] ?? '')) {
      redacted = true
      return '***'
    }
    return arg
  })
  return redacted ? out.join(' ') : null
}

function fromFlags(flags: Flags, warnings: string[]): Settings {
  const settings: Settings = {}
  for (const [name, value] of Object.entries(flags)) {
    if (value === undefined) continue
    const setting = Object.hasOwn(SETTINGS, name) ? SETTINGS[name] : undefined
    if (setting) {
      setting.assign(settings, value, `--${name}`)
      if (setting.secret) warnings.push(secretFlagWarning(name))
    } else if (Object.hasOwn(IGNORED, name)) warnings.push(`--${name} is a reference-farm flag that wikifarm ignores`)
  }
  return settings
}

// ─── putting it together ────────────────────────────────────────────────────────────────────

function pick<K extends keyof Settings>(key: K, ...layers: Settings[]): Settings[K] {
  for (const layer of layers) if (layer[key] !== undefined) return layer[key]
  return undefined
}

export function parseCli(argv: string[], env: NodeJS.ProcessEnv): CliResult {
  const flags = readFlags(argv)
  if (flags.help === true) return { help: usage() }
  if (flags.version === true) return { version: `wikifarm ${VERSION}` }

  const warnings: string[] = []
  const fromFlag = fromFlags(flags, warnings)
  const configFlag = typeof flags.config === 'string' ? flags.config : undefined
  const confFlag = typeof flags.conf === 'string' ? flags.conf : undefined
  if (configFlag !== undefined && confFlag !== undefined && configFlag !== confFlag) {
    fail('--config and --conf', 'name the same setting: give one')
  }
  let file: string | undefined
  let fileWhere = '--config'
  if (configFlag !== undefined || confFlag !== undefined) {
    fileWhere = configFlag !== undefined ? '--config' : '--conf'
    file = text(configFlag ?? confFlag, fileWhere)
  } else if (env.WIKIFARM_CONFIG !== undefined && env.WIKIFARM_CONFIG.trim() !== '') {
    file = env.WIKIFARM_CONFIG
    fileWhere = 'WIKIFARM_CONFIG'
  }
  const fromConfig = file === undefined ? {} : fromFile(readConfigFile(file, fileWhere), file, warnings)
  const fromEnvironment = fromEnv(env)
  const layers = [fromFlag, fromConfig, fromEnvironment]

  const configuredSecret = pick('cookieSecret', ...layers)
  const config: FarmConfig = {
    port: pick('port', ...layers) ?? DEFAULTS.port,
    host: pick('host', ...layers) ?? DEFAULTS.host,
    metricsPort: pick('metricsPort', ...layers) ?? DEFAULTS.metricsPort,
    metricsHost: pick('metricsHost', ...layers) ?? DEFAULTS.metricsHost,
    data: pick('data', ...layers) ?? DEFAULTS.data,
    farm: pick('farm', ...layers) ?? DEFAULTS.farm,
    store: pick('store', ...layers) ?? DEFAULTS.store,
    allowed: pick('allowed', ...layers) ?? [...DEFAULTS.allowed],
    wikiDomains: pick('wikiDomains', ...layers) ?? { ...DEFAULTS.wikiDomains },
    security_type: pick('security_type', ...layers) ?? DEFAULTS.security_type,
    cookieSecret: configuredSecret ?? randomBytes(32).toString('hex'),
    cookieSecretIsRandom: configuredSecret === undefined,
    admin: pick('admin', ...layers) ?? DEFAULTS.admin,
    home: pick('home', ...layers) ?? DEFAULTS.home,
    neighbors: pick('neighbors', ...layers) ?? DEFAULTS.neighbors,
    security_legacy: pick('security_legacy', ...layers) ?? DEFAULTS.security_legacy,
    secure_cookie: pick('secure_cookie', ...layers) ?? DEFAULTS.secure_cookie,
    session_duration: pick('session_duration', ...layers) ?? DEFAULTS.session_duration,
    idleSeconds: pick('idleSeconds', ...layers) ?? DEFAULTS.idleSeconds,
    uploadLimit: pick('uploadLimit', ...layers) ?? DEFAULTS.uploadLimit,
    itemLimit: pick('itemLimit', ...layers) ?? DEFAULTS.itemLimit,
    pageLimit: pick('pageLimit', ...layers) ?? DEFAULTS.pageLimit,
    actionLimit: pick('actionLimit', ...layers) ?? DEFAULTS.actionLimit,
    cacheBytes: pick('cacheBytes', ...layers) ?? DEFAULTS.cacheBytes,
    origins: pick('origins', ...layers) ?? [...DEFAULTS.origins],
    trustProxy: pick('trustProxy', ...layers) ?? DEFAULTS.trustProxy,
    nodeUrl: pick('nodeUrl', ...layers) ?? DEFAULTS.nodeUrl,
    pluginForwarding: pick('pluginForwarding', ...layers) ?? DEFAULTS.pluginForwarding,
    legacyPlugins: pick('legacyPlugins', ...layers) ?? DEFAULTS.legacyPlugins,
    legacyIsolation: pick('legacyIsolation', ...layers) ?? DEFAULTS.legacyIsolation,
    logLevel: pick('logLevel', ...layers) ?? DEFAULTS.logLevel,
    plugins: mergeGrants(
      pick('plugins', ...layers) ?? DEFAULTS.plugins,
      pick('pluginsDisabled', ...layers),
      pick('pluginsFarm', ...layers),
    ),
    pluginLaunchTimeoutMs: pick('pluginLaunchTimeoutMs', ...layers) ?? DEFAULTS.pluginLaunchTimeoutMs,
    pluginHandlerTimeoutMs: pick('pluginHandlerTimeoutMs', ...layers) ?? DEFAULTS.pluginHandlerTimeoutMs,
    pluginCloseTimeoutMs: pick('pluginCloseTimeoutMs', ...layers) ?? DEFAULTS.pluginCloseTimeoutMs,
    pluginHeartbeatTimeoutMs: pick('pluginHeartbeatTimeoutMs', ...layers) ?? DEFAULTS.pluginHeartbeatTimeoutMs,
    pluginRestartLimit: pick('pluginRestartLimit', ...layers) ?? DEFAULTS.pluginRestartLimit,
    maxPayload: pick('maxPayload', ...layers) ?? DEFAULTS.maxPayload,
    sendBufferBytes: pick('sendBufferBytes', ...layers) ?? DEFAULTS.sendBufferBytes,
    pingIntervalSeconds: pick('pingIntervalSeconds', ...layers) ?? DEFAULTS.pingIntervalSeconds,
    loginRate: pick('loginRate', ...layers) ?? DEFAULTS.loginRate,
    claimRate: pick('claimRate', ...layers) ?? DEFAULTS.claimRate,
    editRate: pick('editRate', ...layers) ?? DEFAULTS.editRate,
    upgradeRate: pick('upgradeRate', ...layers) ?? DEFAULTS.upgradeRate,
    socketsPerIp: pick('socketsPerIp', ...layers) ?? DEFAULTS.socketsPerIp,
    socketsPerSite: pick('socketsPerSite', ...layers) ?? DEFAULTS.socketsPerSite,
    connectionsPerIp: pick('connectionsPerIp', ...layers) ?? DEFAULTS.connectionsPerIp,
    readRate: pick('readRate', ...layers) ?? DEFAULTS.readRate,
    headerSeconds: pick('headerSeconds', ...layers) ?? DEFAULTS.headerSeconds,
    requestSeconds: pick('requestSeconds', ...layers) ?? DEFAULTS.requestSeconds,
    keepAliveSeconds: pick('keepAliveSeconds', ...layers) ?? DEFAULTS.keepAliveSeconds,
    socketIdleSeconds: pick('socketIdleSeconds', ...layers) ?? DEFAULTS.socketIdleSeconds,
  }
  // On PostgreSQL any number of nodes may serve one farm, and a cookie signed by one must be
  // honoured by the next (a node dies, HAProxy moves its sites): a random secret per process
  // would log every visitor out on every move, so the secret must be the operator's.
  if (config.store !== null && config.cookieSecretIsRandom) {
    throw new ERR_CONFIG('cookieSecret: required with the PostgreSQL store (store): every node of the farm ' +
      'must sign cookies with the same secret; set "cookieSecret" in the config file or WIKIFARM_COOKIE_SECRET')
  }
  if (config.metricsPort !== null && config.metricsPort !== 0 && config.metricsPort === config.port)
    fail('metricsPort', `must differ from port (${config.port}): metrics never share the sites' port`)
  return { config, warnings: [...warnings, ...bootWarnings(config)] }
}

/** What an operator should hear about at every boot. */
export function bootWarnings(config: FarmConfig): string[] {
  const warnings: string[] = []
  const domains = Object.keys(config.wikiDomains).length
  if (config.farm && config.allowed.length === 0 && domains === 0) {
    warnings.push('promiscuous farm: neither --allowed nor wikiDomains is set, so every Host is served, ' +
      'and anyone who claims a site there creates a site folder in the data folder')
  }
  if (!config.farm && (config.allowed.length > 0 || domains > 0)) {
    warnings.push('allowed and wikiDomains only apply with --farm: this single site answers every Host')
  }
  if (config.cookieSecretIsRandom) {
    warnings.push('no cookieSecret configured: using a random one, so every session ends when the farm restarts')
  }
  if (config.security_legacy) {
    warnings.push('security_legacy is on: any visitor may edit a site that nobody has claimed')
  }
  warnings.push(...domainWarnings(config.wikiDomains))
  if (!config.farm) {
    for (const [name, grant] of Object.entries(config.plugins)) {
      if (
        grant.sites !== undefined &&
        grant.sites !== '*' &&
        !grant.sites.includes('default') &&
        grant.enabled !== false
      ) {
        warnings.push(
          `plugins.${name}.sites names hosts, but without --farm the one site is named "default": ` +
            'the plugin is reachable on no site (use "sites": "*")',
        )
      }
    }
  }
  return warnings
}

function wrap(line: string, width: number): string[] {
  const out: string[] = []
  let current = ''
  for (const word of line.split(' ')) {
    if (current !== '' && current.length + 1 + word.length > width) {
      out.push(current)
      current = word
    } else {
      current = current === '' ? word : `${current} ${word}`
    }
  }
  out.push(current)
  return out
}

/** The --help text: every flag with its default, the config file, the environment, precedence. */
export function usage(): string {
  const rows: [string, string, string][] = []
  for (const [name, s] of Object.entries(SETTINGS)) {
    if (!s.flag) continue
    const left = `${s.short ? `-${s.short}, ` : '    '}--${name}${s.arg ? ` ${s.arg}` : ''}`
    rows.push([left, s.help, s.shown])
  }
  rows.push(['    --config FILE', 'JSON config file (also --conf FILE, or WIKIFARM_CONFIG)', 'none'])
  rows.push(['-h, --help', 'show this help and exit', ''])
  rows.push(['-v, --version', 'show the version and exit', ''])
  const width = Math.max(...rows.map(([left]) => left.length)) + 2
  const line = ([left, help, shown]: [string, string, string]): string => {
    const head = `  ${left.padEnd(width)}`
    // \u00a0 keeps "(default: x)" on one line; it becomes a plain space after wrapping.
    return wrap(`${help}${shown ? ` (default:\u00a0${shown})` : ''}`, 98 - head.length)
      .join(`\n${' '.repeat(head.length)}`).replace(/^/, head).replace(/\u00a0/g, ' ')
  }
  const fileKeys = Object.entries(SETTINGS).filter(([, s]) => !s.flag)
  const perDomain = Object.keys(SETTINGS).filter((k) => SETTINGS[k]?.perDomain)
  const fileNotes: Record<string, string> = {
    wikiDomains: `. Per-domain settings are checked (${perDomain.join(', ')}); ` +
      'the farm-wide values are the ones used',
    plugins: '. --plugins_disable and --plugins_farm add to these grants',
  }
  const envExamples = ['port', 'cookieSecret', 'cacheMB'].map((k) => envNames(k).join(' or ')).join(', ')
  const ignored = Object.keys(IGNORED).map((k) => `--${k}`).join(' ')
  return [
    'Usage: wikifarm [flags]',
    '       wikifarm export --store URL --to DIR     a PostgreSQL store to the folder layout',
    '       wikifarm import --from DIR --store URL   a data folder into a PostgreSQL store',
    '',
    'A federated-wiki farm server: one process, many wikis, routed by Host.',
    '',
    'Flags:',
    ...rows.map(line),
    '',
    'Boolean flags take no value; --no-<flag> turns one off (e.g. --no-farm).',
    '',
    'Config file: a JSON object whose keys are the flag names above (without --), plus these keys:',
    ...fileKeys.map(([key, s]) => line([key, `${s.help}${fileNotes[key] ?? ''}`, s.shown])),
    '',
    ...wrap('Environment: WIKIFARM_ and the key in upper snake case, or the key uppercased, e.g. ' +
      `${envExamples}. WIKIFARM_WIKI_DOMAINS and WIKIFARM_PLUGINS hold JSON; WIKIFARM_CONFIG names the config file. ` +
      'Empty values count as unset.', 96),
    '',
    'Precedence: flags, then the config file, then WIKIFARM_* variables, then the defaults.',
    '',
    ...wrap(`Reference-farm options accepted and ignored (with a warning): ${ignored}`, 96),
    '',
  ].join('\n')
}
