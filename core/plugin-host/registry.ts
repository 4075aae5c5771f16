// Server-side plugins: discovery (built-ins in plugins/, packages named in the config),
// validation, launch once per process at kernel start (with a timeout), state and reasons,
// retries for hot-plugged hardware, admin relaunch, and shutdown in reverse order.
import { existsSync, realpathSync } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { dirname, isAbsolute, join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import FindMyWay from 'find-my-way'
import { Compile } from 'typebox/compile'
import {
  SUBPROTOCOL_V1, type EventContext, type KernelHandle, type PluginInstance, type PluginLogger,
  type Placement, type SiteHandle, type SocketDeclaration, type Trust,
} from '../plugin-api.js'
import {
  API_VERSION,
  SUPPORTED_API_VERSIONS,
  isDefinedPlugin,
  isPluginUnavailable,
  type AnyRouteDeclaration,
  type DefinedPlugin,
} from './contract.js'
import type { EventBus, EventName, Listener } from '../pages/events.js'
import type { SiteRegistry } from '../pages/sites.js'
import { siteHandle } from './context.js'
import { PUSH_CONNECTION_PLUGIN, type PushHub } from '../sockets/push-hub.js'
import { normalizeHost } from '../http/site-router.js'
import { ERR_PLUGIN_CONFIG, ERR_PLUGIN_NOT_ENABLED } from '../errors.js'
import { suggestion } from '../did-you-mean.js'
import { optionsProblem, optionsWithDefaults } from './plugin-options.js'
import { ISOLATION_MODES, type IsolationMode } from './isolation/channel.js'
import { DEFAULT_ISOLATION_LIMITS, PluginHost, type IsolationLimits } from './isolation/host.js'
import { describedPlugin, sameDescription, type PluginDescription } from './description.js'
import type { PluginGrant } from '../farm-config.js'
import { deadline } from '../deadline.js'
import { CLOSE } from '../sockets/close-codes.js'

export const BUILTIN_PLUGINS_DIR = fileURLToPath(new URL('../../plugins/', import.meta.url))
const NAME = /^[a-z][a-z0-9-]{0,39}$/
const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE'])
const MAX_RETRY_MS = 5 * 60_000

/**
 * The isolation a plugin gets when the operator names none, decided before any of its code runs
 * (reading its definition would run it). Built-ins are the kernel's own, reviewed code and
 * include hardware drivers whose native bindings need the main thread: in process. A third-party
 * plugin is code the farm has not reviewed: a child process, the one mode that is a security
 * boundary (docs/security.md). The operator's `isolation` grant wins over both.
 */
export function defaultIsolation(builtin: boolean): IsolationMode {
  return builtin ? 'none' : 'process'
}

/** How the kernel restarts an isolated plugin that died. */
export interface RestartPolicy {
  /** First restart delay; doubled after each crash. */
  baseMs: number
  /** Longest delay between restarts. */
  maxMs: number
  /** Crashes in a row (without `stableMs` of running in between) after which it stays failed. */
  limit: number
  /** Running this long without a crash forgets the earlier crashes. */
  stableMs: number
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { baseMs: 250, maxMs: 30_000, limit: 5, stableMs: 60_000 }

/** `standby`: a one-node plugin that another node of the farm runs, or that waits for its election. */
export type PluginState =
  'disabled' | 'launching' | 'running' | 'restarting' | 'unavailable' | 'failed' | 'stopped' | 'standby'

export interface PluginStatus {
  name: string
  source: string
  state: PluginState
  reason: string | null
  requestedTrust: Trust | null
  trust: Trust | null
  sites: string[] | '*'
  apiVersion: number | null
  launchedAt: string | null
  launches: number
  nextRetryAt: string | null
  isolation: IsolationMode
  /** Deaths of an isolated plugin since it last ran stably (or was relaunched by the admin). */
  crashes: number
  /** Process id of a 'process' plugin. */
  pid: number | null
  /** Messages from an isolated plugin the kernel refused (malformed, out of turn), this run. */
  violations: number
  /** Where it runs in a farm of many nodes: the operator's grant, else what the plugin declared. */
  placement: Placement
}

export interface RegistryOptions {
  grants: Record<string, PluginGrant>
  launchTimeoutMs: number
  closeTimeoutMs: number
  builtinDir?: string
  /** The farm's data folder, which a `process` plugin's child must never be able to read. */
  dataDir?: string
  log: PluginLogger
  loggerFor(plugin: string): PluginLogger
  /** Where site handles publish (ctx.site.publish). */
  push: PushHub
  /** Limits of isolated plugins (heap, heartbeat, calls in flight). */
  isolation?: Partial<IsolationLimits>
  restart?: Partial<RestartPolicy>
  /** Installed wiki-plugin-* server parts: grants naming them belong to the legacy adapter. */
  legacyNames?: ReadonlySet<string>
}

/** A plugin's definition as discovery read it, or why it could not. */
type ReadDefinition = { definition: PluginDescription | null; inProcess: DefinedPlugin | null; reason: string | null }

type RouteStore = { route: AnyRouteDeclaration; validators: RouteValidators }
type SocketStore = { socket: SocketDeclaration; validator: ReturnType<typeof Compile> | null }
type SocketEntry = { plain?: SocketStore; v1?: SocketStore }

export interface RouteValidators {
  params: ReturnType<typeof Compile> | null
  querystring: ReturnType<typeof Compile> | null
  body: ReturnType<typeof Compile> | null
  response: ReturnType<typeof Compile> | null
}

export interface LiveInstance {
  instance: PluginInstance
  routes: FindMyWay.Instance<FindMyWay.HTTPVersion.V1>
  sockets: FindMyWay.Instance<FindMyWay.HTTPVersion.V1>
}

export class PluginRecord {
  readonly name: string
  readonly source: string
  /** What the plugin declared: read in the kernel's thread for `none`, inside its sandbox otherwise. */
  definition: PluginDescription | null
  /** The module's export, for a plugin that runs in the kernel's thread; never set for an isolated one. */
  inProcess: DefinedPlugin | null = null
  readonly grant: PluginGrant
  state: PluginState
  reason: string | null = null
  launchedAt: Date | null = null
  launches = 0
  live: LiveInstance | null = null
  retryTimer: NodeJS.Timeout | null = null
  nextRetryAt: Date | null = null
  retryDelayMs = 0
  unsubscribe: (() => void)[] = []
  /** Serialises launch, relaunch and close of this plugin. */
  busy: Promise<void> = Promise.resolve()
  /** The module to load: an absolute path or a package name. */
  module = ''
  /** The plugin's own folder, when it has one on disk. */
  dir: string | null = null
  isolation: IsolationMode = 'none'
  /** The worker or child process of an isolated plugin, while it runs. */
  host: PluginHost | null = null
  /** The sandbox that described an isolated plugin at discovery, kept for its first launch. */
  parked: PluginHost | null = null
  crashes = 0
  /** The last launch failure logged at warn, so that retries failing alike are not repeated. */
  lastLogged: string | null = null

  constructor(name: string, source: string, definition: PluginDescription | null, grant: PluginGrant,
    state: PluginState, reason: string | null) {
    this.name = name
    this.source = source
    this.definition = definition
    this.grant = grant
    this.state = state
    this.reason = reason
  }

  get trust(): Trust | null {
    return this.definition?.trust ?? null
  }

  /** Where it runs in a farm of many nodes: the operator's grant, else what the plugin declared. */
  get placement(): Placement {
    return this.grant.placement ?? this.definition?.placement ?? 'every-node'
  }

  /** Is the plugin reachable on this site? */
  servesSite(site: string): boolean {
    const sites = this.grant.sites ?? '*'
    return sites === '*' || sites.includes(site)
  }

  status(): PluginStatus {
    return {
      name: this.name,
      source: this.source,
      state: this.state,
      reason: this.reason,
      requestedTrust: this.definition?.trust ?? null,
      trust: this.grant.trust ?? null,
      sites: this.grant.sites ?? '*',
      apiVersion: this.definition?.apiVersion ?? null,
      launchedAt: this.launchedAt?.toISOString() ?? null,
      launches: this.launches,
      nextRetryAt: this.nextRetryAt?.toISOString() ?? null,
      isolation: this.isolation,
      crashes: this.crashes,
      pid: this.host?.pid ?? null,
      violations: this.host?.violationsTotal ?? 0,
      placement: this.placement,
    }
  }
}

function compileOrNull(schema: unknown): ReturnType<typeof Compile> | null {
  return schema ? Compile(schema as Parameters<typeof Compile>[0]) : null
}

function timeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return deadline(promise, ms, () => {
    throw new Error(`${what} did not finish within ${ms} ms`)
  })
}

/** The module a grant's `package` names: a path (from the working directory) made absolute, a package name as it is. */
function resolvePluginModule(specifier: string): string {
  return isAbsolute(specifier) || specifier.startsWith('.') ? resolve(specifier) : specifier
}

/**
 * The folder a `process` plugin may read besides the node_modules folders: a module file's
 * folder, or an installed package's own folder by its real path (npm installs a package from
 * a folder as a link to that folder, outside node_modules).
 */
function pluginFolder(module: string): string | null {
  if (isAbsolute(module)) return dirname(module)
  try {
    // Resolved as the sandbox's import will resolve it: from beside wikifarm, through `exports`.
    const entry = realpathSync(fileURLToPath(import.meta.resolve(module)))
    for (let dir = dirname(entry); dirname(dir) !== dir; dir = dirname(dir)) {
      if (existsSync(join(dir, 'package.json'))) return dir
    }
  } catch {
    // Not installed, or not a file: loading it reports why.
  }
  return null
}

/** Is `path` the folder `folder` or inside it? */
function within(path: string, folder: string): boolean {
  const rel = relative(folder, path)
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))
}

/** Imports a plugin in the kernel's own thread: only ever one that runs there (isolation `none`). */
async function importPlugin(specifier: string): Promise<unknown> {
  const module = resolvePluginModule(specifier)
  const loaded = await import(isAbsolute(module) ? pathToFileURL(module).href : module) as { default?: unknown }
  return loaded.default
}

/** Builds the routers of a launched instance; throws a reason when a declaration is invalid. */
function buildLive(instance: PluginInstance): LiveInstance {
  if (instance === null || typeof instance !== 'object') throw new Error('launch must resolve to an object')
  const routes = FindMyWay<FindMyWay.HTTPVersion.V1>({ ignoreTrailingSlash: true, maxParamLength: 500 })
  const sockets = FindMyWay<FindMyWay.HTTPVersion.V1>({ ignoreTrailingSlash: true, maxParamLength: 500 })
  for (const route of instance.routes ?? []) {
    if (!METHODS.has(route.method)) throw new Error(`route ${String(route.method)} ${route.url}: unsupported method`)
    if (typeof route.url !== 'string' || !route.url.startsWith('/'))
      throw new Error(`route ${route.url}: url must start with /`)
    if (typeof route.handler !== 'function') throw new Error(`route ${route.method} ${route.url}: no handler`)
    const validators: RouteValidators = {
      params: compileOrNull(route.schema?.params),
      querystring: compileOrNull(route.schema?.querystring),
      body: compileOrNull(route.schema?.body),
      response: compileOrNull(route.schema?.response),
    }
    try {
      routes.on(route.method, route.url, () => {}, { route, validators } satisfies RouteStore)
    } catch (err) {
      throw new Error(`route ${route.method} ${route.url}: ${(err as Error).message}`, { cause: err })
    }
  }
  const byUrl = new Map<string, SocketEntry>()
  for (const socket of instance.sockets ?? []) {
    if (typeof socket.url !== 'string' || !socket.url.startsWith('/'))
      throw new Error(`socket ${socket.url}: url must start with /`)
    if (socket.codec !== 'text' && socket.codec !== 'json')
      throw new Error(`socket ${String((socket as { url: unknown }).url)}: codec must be 'text' or 'json'`)
    if (socket.codec === 'json' && !socket.message)
      throw new Error(`socket ${socket.url}: a json socket declares its message schema`)
    if (socket.protocol !== undefined && socket.protocol !== SUBPROTOCOL_V1)
      throw new Error(`socket ${socket.url}: unknown protocol ${String(socket.protocol)}`)
    const validator = socket.codec === 'json' ? compileOrNull(socket.message) : null
    const entry = byUrl.get(socket.url) ?? {}
    const slot = socket.protocol === SUBPROTOCOL_V1 ? 'v1' : 'plain'
    if (entry[slot])
      throw new Error(`socket ${socket.url}: declared twice${slot === 'v1' ? ` for ${SUBPROTOCOL_V1}` : ''}`)
    entry[slot] = { socket, validator }
    byUrl.set(socket.url, entry)
  }
  for (const [url, entry] of byUrl) {
    try {
      sockets.on('GET', url, () => {}, entry)
    } catch (err) {
      throw new Error(`socket ${url}: ${(err as Error).message}`, { cause: err })
    }
  }
  return { instance, routes, sockets }
}

export function findRoute(
  live: LiveInstance,
  method: string,
  path: string,
): { store: RouteStore; params: Record<string, string | undefined> } | null {
  const found = live.routes.find(method as FindMyWay.HTTPMethod, path)
  return found ? { store: found.store as RouteStore, params: found.params } : null
}

/**
 * The declaration serving a connection to `path`: the one for wikifarm.v1 when the client
 * offered it (the kernel always selects it then), else the plain one.
 */
export function findSocket(
  live: LiveInstance,
  path: string,
  offersV1: boolean,
): { store: SocketStore; params: Record<string, string | undefined> } | null {
  const found = live.sockets.find('GET', path)
  if (!found) return null
  const entry = found.store as SocketEntry
  const store = offersV1 ? (entry.v1 ?? entry.plain) : entry.plain
  return store ? { store, params: found.params } : null
}

export class PluginRegistry {
  readonly #records: PluginRecord[] = []
  readonly #options: RegistryOptions
  readonly #sites: SiteRegistry
  readonly #events: EventBus
  /**
   * Called when a plugin stops serving (relaunch, shutdown): closes its sockets, and resolves
   * once they have closed, before the plugin's own close runs.
   */
  onStop: (plugin: string, code: number, reason: string) => void | Promise<void> = () => {}
  /**
   * Asked before every launch (first, retry, restart, admin relaunch): a reason not to launch
   * here, or null. The farm's placement (core/cluster/placement.ts) keeps a one-node plugin
   * in standby on every node but the one elected to run it.
   */
  launchGate: (record: PluginRecord) => string | null = () => null
  #closed = false

  constructor(options: RegistryOptions, sites: SiteRegistry, events: EventBus) {
    this.#options = options
    this.#sites = sites
    this.#events = events
  }

  records(): readonly PluginRecord[] {
    return this.#records
  }

  get(name: string): PluginRecord | undefined {
    return this.#records.find((r) => r.name === name)
  }

  statuses(): PluginStatus[] {
    return this.#records.map((r) => r.status())
  }

  /**
   * Finds and validates every plugin. Operator mistakes that would make routes ambiguous
   * (bad or duplicate names, unknown plugins) throw; a plugin that cannot run is recorded
   * as failed with its reason, and the farm serves without it.
   */
  async discover(): Promise<void> {
    const grants = this.#options.grants
    const found: { name: string; source: string; module: string }[] = []
    const builtinDir = this.#options.builtinDir ?? BUILTIN_PLUGINS_DIR
    for (const entry of (await readdir(builtinDir).catch(() => [] as string[])).sort()) {
      for (const file of ['index.ts', 'index.js']) {
        const path = join(builtinDir, entry, file)
        if (await stat(path).then((s) => s.isFile(), () => false)) {
          found.push({ name: entry, source: `built-in plugins/${entry}`, module: path })
          break
        }
      }
    }
    for (const [name, grant] of Object.entries(grants)) {
      if (grant.package) {
        found.push({ name, source: `package ${grant.package}`, module: resolvePluginModule(grant.package) })
      } else if (!found.some((f) => f.name === name) && !this.#options.legacyNames?.has(name)) {
        const hint = suggestion(name, found.map((f) => f.name), '')
        throw new ERR_PLUGIN_CONFIG(
          `plugins.${name}: no built-in plugin of that name${hint ? ` (did you mean "${hint}"?)` : ''}; ` +
            'name its "package" to load a third-party plugin',
        )
      }
    }
    const records: PluginRecord[] = []
    for (const { name, source, module } of found) {
      if (!NAME.test(name))
        throw new ERR_PLUGIN_CONFIG(`plugin name ${JSON.stringify(name)} (${source}) must match ${NAME}`)
      // The kernel's own push connections carry this name in the socket hub.
      if (name === PUSH_CONNECTION_PLUGIN)
        throw new ERR_PLUGIN_CONFIG(`plugin name ${JSON.stringify(name)} (${source}) is reserved`)
      const twin = records.find((r) => r.name === name)
      if (twin) throw new ERR_PLUGIN_CONFIG(`two plugins are named ${name}: ${twin.source} and ${source}`)
      const grant: PluginGrant = { ...grants[name] }
      if (grant.isolation !== undefined && !ISOLATION_MODES.includes(grant.isolation)) {
        throw new ERR_PLUGIN_CONFIG(`plugins.${name}.isolation must be one of ${ISOLATION_MODES.join(', ')}`)
      }
      if (grant.mode !== undefined) {
        throw new ERR_PLUGIN_CONFIG(`plugins.${name}.mode: only legacy wiki-plugin-* server parts take "mode"`)
      }
      // Decided before any of the plugin's code runs: where it runs is where it is read.
      grant.isolation ??= defaultIsolation(source.startsWith('built-in'))
      const record = new PluginRecord(name, source, null, grant, 'stopped', null)
      record.module = module
      record.dir = pluginFolder(module)
      record.isolation = grant.isolation
      records.push(record)
    }
    // Definitions are read concurrently: each isolated plugin describes itself in its own sandbox.
    const read = await Promise.all(records.map((record) => this.#read(record)))
    try {
      for (const [index, record] of records.entries()) {
        const { definition, inProcess, reason } = read[index] as ReadDefinition
        this.#admit(record, definition, inProcess, reason)
      }
    } catch (err) {
      // The farm does not start: no sandbox outlives it.
      for (const record of records) record.parked?.terminate()
      throw err
    }
  }

  // A process plugin's child may read its plugin's folder: never one that holds every site's pages.
  #folderRefusal(record: PluginRecord): string | null {
    const data = this.#options.dataDir
    if (record.isolation !== 'process' || record.dir === null || data === undefined) return null
    if (!within(resolve(data), record.dir)) return null
    return `its folder ${record.dir} holds the farm's data folder, which a process plugin must not read: `
      + 'move the plugin to a folder of its own'
  }

  /**
   * Reads a plugin's definition where it will run: imported here for `none`, described by its
   * worker or child otherwise (the sandbox is kept for the first launch). A disabled isolated
   * plugin is not started at all.
   */
  async #read(record: PluginRecord): Promise<ReadDefinition> {
    // Refused before its sandbox starts: describing runs the plugin's code with its folder readable.
    const folder = this.#folderRefusal(record)
    if (folder) return { definition: null, inProcess: null, reason: folder }
    try {
      if (record.isolation === 'none') {
        const loaded = await importPlugin(record.module)
        if (!isDefinedPlugin(loaded)) throw new Error('its default export is not a definePlugin() result')
        return { definition: loaded, inProcess: loaded, reason: null }
      }
      if (record.grant.enabled === false) return { definition: null, inProcess: null, reason: null }
      const host = this.#host(record)
      record.parked = host
      try {
        const data = await timeout(host.describe(), this.#options.launchTimeoutMs, 'describing itself')
        return { definition: describedPlugin(data), inProcess: null, reason: null }
      } catch (err) {
        host.terminate()
        record.parked = null
        throw err
      }
    } catch (err) {
      const first = String((err as Error).message).split(/\r?\n/, 1)[0]
      return { definition: null, inProcess: null, reason: `could not load: ${first}` }
    }
  }

  /** Applies the operator's grant to what the plugin declared, with the same rules wherever it was read. */
  #admit(record: PluginRecord, definition: PluginDescription | null, inProcess: DefinedPlugin | null,
    reason: string | null): void {
    const { name, source, grant } = record
    if (definition && definition.name !== name) {
      throw new ERR_PLUGIN_CONFIG(
        `${source} defines plugin ${JSON.stringify(definition.name)} but is configured as ${name}`)
    }
    // Built-ins get the trust they request unless the operator says otherwise;
    // third-party plugins get `site` unless the operator grants `farm`.
    grant.trust ??= source.startsWith('built-in') && definition ? definition.trust : 'site'
    record.definition = definition
    record.inProcess = inProcess
    if (grant.enabled === false) {
      record.state = 'disabled'
      record.reason = 'disabled by the operator'
    } else if (reason ?? (definition && this.#refusal(definition, grant))) {
      record.state = 'failed'
      record.reason = reason ?? this.#refusal(definition as PluginDescription, grant)
    }
    if (record.state !== 'stopped') {
      record.parked?.terminate()
      record.parked = null
    }
    if (record.state === 'failed') this.#options.loggerFor(name).error(`plugin refused: ${record.reason}`, { source })
    this.#records.push(record)
  }

  #refusal(definition: PluginDescription, grant: PluginGrant): string | null {
    if (!SUPPORTED_API_VERSIONS.includes(definition.apiVersion)) {
      const supported = SUPPORTED_API_VERSIONS.join(', v')
      const speaks = `it speaks plugin API v${String(definition.apiVersion)}`
      return `${speaks}; this kernel supports v${supported} (current v${API_VERSION})`
    }
    if (definition.trust !== 'farm' && definition.trust !== 'site')
      return `it requests unknown trust ${JSON.stringify(definition.trust)}`
    const isolation = grant.isolation ?? 'none'
    if (definition.isolationModes && !definition.isolationModes.includes(isolation)) {
      const supported = definition.isolationModes.map((m) => `"${m}"`).join(', ')
      const fix = `set plugins.${definition.name}.isolation`
      return `it cannot run with isolation "${isolation}" (it supports ${supported}): ${fix}`
    }
    if (definition.trust === 'farm' && grant.trust !== 'farm') {
      return (
        'it requests farm trust and the operator granted site trust: ' +
        `grant it with plugins.${definition.name}.trust = "farm"`
      )
    }
    const problem = definition.options ? optionsProblem(definition.options, grant.options) : null
    return problem ? `invalid options: ${problem}` : null
  }

  /** Launches every enabled plugin, concurrently, each once. Resolves when all have settled. */
  async launchAll(): Promise<void> {
    await Promise.all(
      this.#records.filter((r) => r.state === 'stopped').map((r) => this.#serialise(r, () => this.#launch(r))),
    )
  }

  /** Stops and launches a plugin again (admin route, or a retry). */
  relaunch(name: string): Promise<PluginStatus> {
    const record = this.get(name)
    if (!record) return Promise.reject(new ERR_PLUGIN_NOT_ENABLED(name))
    return this.#serialise(record, async () => {
      if (record.state === 'disabled' || !record.definition) return
      if (this.#refusal(record.definition, record.grant) ?? this.#folderRefusal(record)) return
      await this.#stop(record, CLOSE.RESTART, 'plugin restarting')
      // An operator's relaunch starts the backoff afresh.
      record.retryDelayMs = 0
      record.crashes = 0
      await this.#launch(record)
    }).then(() => record.status())
  }

  /** Launches a plugin waiting in standby (this node was just elected to run it); resolves to its state. */
  launchElected(name: string): Promise<PluginStatus> {
    const record = this.get(name)
    if (!record) return Promise.reject(new ERR_PLUGIN_NOT_ENABLED(name))
    return this.#serialise(record, async () => {
      if (record.state !== 'standby' || !record.definition) return
      record.retryDelayMs = 0
      await this.#launch(record)
    }).then(() => record.status())
  }

  /**
   * Stops a plugin and leaves it in standby with `reason` (this node no longer runs it: it lost
   * the election, or its launch failed and it lets another node try). Pending retries are dropped.
   */
  standDown(name: string, reason: string): Promise<void> {
    const record = this.get(name)
    if (!record) return Promise.resolve()
    return this.#serialise(record, async () => {
      if (record.state === 'disabled' || !record.definition) return
      await this.#stop(record, CLOSE.RESTART, 'plugin moving to another node')
      record.state = 'standby'
      record.reason = reason
    })
  }

  #serialise(record: PluginRecord, task: () => Promise<void>): Promise<void> {
    const run = record.busy.then(task)
    record.busy = run.catch(() => {})
    return run
  }

  #handle(record: PluginRecord): KernelHandle {
    const trust = record.definition?.trust ?? 'site'
    const push = this.#options.push
    const sites = this.#sites
    return {
      apiVersion: API_VERSION,
      trust,
      log: this.#options.loggerFor(record.name),
      // A site plugin reaches sites through a request's, a connection's or an event's context;
      // by name only those the operator listed for it (never with the '*' grant).
      async sites() {
        if (trust === 'farm') return sites.openSites()
        const granted = record.grant.sites
        return Array.isArray(granted) ? [...granted] : []
      },
      async site(name: string): Promise<SiteHandle> {
        // Named as a Host is: 'B.Example' and 'b.example' are one site, '../x' none.
        let host: string
        try {
          host = normalizeHost(String(name))
        } catch {
          throw new ERR_PLUGIN_NOT_ENABLED(`${record.name} on ${JSON.stringify(String(name).slice(0, 60))}`)
        }
        const resolved = await sites.resolveName(host)
        const listed = Array.isArray(record.grant.sites) && record.grant.sites.includes(resolved ?? '')
        if (resolved === null || (trust === 'site' && !listed))
          throw new ERR_PLUGIN_NOT_ENABLED(`${record.name} on ${name}`)
        return siteHandle(sites, resolved, push, record.name)
      },
    }
  }

  async #launch(record: PluginRecord): Promise<void> {
    if (this.#closed || !record.definition) return
    const definition = record.definition
    const elsewhere = this.launchGate(record)
    if (elsewhere !== null) {
      record.state = 'standby'
      record.reason = elsewhere
      record.nextRetryAt = null
      return
    }
    record.state = 'launching'
    record.reason = null
    record.nextRetryAt = null
    const log = this.#options.loggerFor(record.name)
    const options = definition.options
      ? optionsWithDefaults(definition.options, record.grant.options)
      : (record.grant.options ?? {})
    const inProcess = record.inProcess
    let host: PluginHost | null = null
    if (record.isolation !== 'none') {
      const parked = record.parked
      record.parked = null
      if (parked?.alive) host = parked
      else parked?.terminate()
    }
    const fresh = record.isolation !== 'none' && host === null
    if (fresh) host = this.#host(record)
    record.host = host
    const launching = host ? this.#launchIsolated(record, host, fresh, options)
      : Promise.resolve().then(() => {
        if (!inProcess) throw new Error('its module was not loaded')
        return inProcess.launch(this.#handle(record), options as never)
      })
    try {
      const instance = await timeout(launching, this.#options.launchTimeoutMs, 'launch')
      record.live = buildLive(instance)
      record.state = 'running'
      record.launchedAt = new Date()
      record.launches++
      record.retryDelayMs = 0
      this.#subscribe(record, instance)
      record.lastLogged = null
      log.info('plugin launched', {
        trust: definition.trust,
        isolation: record.isolation,
        ...(host?.pid ? { pid: host.pid } : {}),
      })
    } catch (err) {
      // A launch that finishes after its timeout still gets closed, so it releases what it holds.
      if (host) {
        host.terminate()
        record.host = null
      } else {
        void launching.then((late) => late?.close?.()).catch(() => {})
      }
      record.live = null
      const unavailable = isPluginUnavailable(err)
      record.state = unavailable ? 'unavailable' : 'failed'
      record.reason = unavailable ? err.reason : (err as Error)?.message ?? String(err)
      // Logged once per reason: a plugin waiting for its device retries quietly (debug).
      const said = `${record.state}: ${record.reason}`
      if (said === record.lastLogged) log.debug(`plugin still ${record.state}`, { reason: record.reason })
      else log.warn(`plugin ${record.state}`, { reason: record.reason })
      record.lastLogged = said
      const retry = unavailable ? err.retryAfterMs : undefined
      if (retry !== undefined && retry > 0) this.#scheduleRetry(record, retry)
    }
  }

  #limits(): IsolationLimits {
    return { ...DEFAULT_ISOLATION_LIMITS, ...this.#options.isolation }
  }

  /**
   * Launches an isolated plugin on its host. A fresh host (a restart or relaunch) reads the
   * definition again in its new sandbox: one that changed since discovery is refused, since
   * the grant was checked against the old one.
   */
  async #launchIsolated(record: PluginRecord, host: PluginHost, fresh: boolean,
    options: unknown): Promise<PluginInstance> {
    const definition = record.definition as PluginDescription
    if (fresh) {
      const again = describedPlugin(await host.describe())
      if (!sameDescription(again, definition)) {
        throw new Error('its definition changed since the farm started: restart the farm to check it again')
      }
    }
    return host.launch(definition.trust, definition.apiVersion, options)
  }

  #host(record: PluginRecord): PluginHost {
    const limits = this.#limits()
    if (record.grant.maxHeapMb !== undefined) limits.maxHeapMb = record.grant.maxHeapMb
    if (record.grant.maxRssMb !== undefined) limits.maxRssMb = record.grant.maxRssMb
    const push = this.#options.push
    const sites = this.#sites
    const host: PluginHost = new PluginHost({
      name: record.name,
      mode: record.isolation as Exclude<IsolationMode, 'none'>,
      module: record.module,
      pluginDir: record.dir,
      allowAddons: record.grant.allowAddons === true,
      allowRead: record.grant.allowRead ?? [],
      limits,
      kernel: this.#handle(record),
      siteHandle: (name) => siteHandle(sites, name, push, record.name),
      log: this.#options.loggerFor(record.name),
      onExit: (reason) => { void this.#serialise(record, () => this.#crashed(record, host, reason)) },
    })
    return host
  }

  /**
   * An isolated plugin died on its own: its routes answer 503 and its sockets close at once; it
   * is started again after a capped, doubling delay, or stays failed after too many crashes in
   * a row, with the last reason, until the admin relaunches it.
   */
  async #crashed(record: PluginRecord, host: PluginHost, reason: string): Promise<void> {
    if (record.host !== host || this.#closed) return
    const policy = { ...DEFAULT_RESTART_POLICY, ...this.#options.restart }
    const ranFor = record.launchedAt ? Date.now() - record.launchedAt.getTime() : 0
    if (ranFor >= policy.stableMs) record.crashes = 0
    record.crashes++
    const giveUp = record.crashes >= policy.limit
    const log = this.#options.loggerFor(record.name)
    log.error('isolated plugin died', { reason, crashes: record.crashes, isolation: record.isolation })
    for (const unsubscribe of record.unsubscribe.splice(0)) unsubscribe()
    record.live = null
    record.host = null
    record.state = giveUp ? 'failed' : 'restarting'
    record.reason = giveUp
      ? `crashed ${record.crashes} time${record.crashes === 1 ? '' : 's'} in a row; last: ${reason}`
      : `crashed: ${reason}; restarting`
    try {
      // 1012: come back soon, the plugin is restarting; 1011: it failed and stays down.
      await this.onStop(
        record.name,
        giveUp ? CLOSE.INTERNAL : CLOSE.RESTART,
        giveUp ? 'plugin failed' : 'plugin restarting',
      )
    } catch (err) {
      log.error('closing the plugin\'s sockets failed', { reason: (err as Error).message })
    }
    if (giveUp) return
    const delay = Math.min(policy.maxMs, policy.baseMs * 2 ** (record.crashes - 1))
    record.nextRetryAt = new Date(Date.now() + delay)
    record.retryTimer = setTimeout(() => {
      record.retryTimer = null
      void this.#serialise(record, () => (record.state === 'restarting' ? this.#launch(record) : Promise.resolve()))
    }, delay)
    record.retryTimer.unref()
  }

  #scheduleRetry(record: PluginRecord, baseMs: number): void {
    if (this.#closed) return
    record.retryDelayMs = Math.min(MAX_RETRY_MS, record.retryDelayMs ? record.retryDelayMs * 2 : baseMs)
    record.nextRetryAt = new Date(Date.now() + record.retryDelayMs)
    record.retryTimer = setTimeout(() => {
      record.retryTimer = null
      void this.#serialise(record, () => (record.state === 'unavailable' ? this.#launch(record) : Promise.resolve()))
    }, record.retryDelayMs)
    record.retryTimer.unref()
  }

  #subscribe(record: PluginRecord, instance: PluginInstance): void {
    const accepts = record.definition?.trust === 'farm' ? null : (site: string) => record.servesSite(site)
    const sites = this.#sites
    const push = this.#options.push
    for (const [event, listener] of Object.entries(instance.events ?? {})) {
      if (typeof listener !== 'function') continue
      // Each event comes with its own site's handle: the one site a site plugin may act on.
      const deliver: Listener<EventName> = (payload) =>
        (listener as (e: typeof payload, ctx: EventContext) => void | Promise<void>)(payload, {
          site: siteHandle(sites, payload.site, push, record.name),
        })
      record.unsubscribe.push(this.#events.on(event as EventName, deliver, record.name, accepts))
    }
  }

  async #stop(record: PluginRecord, code: number, reason: string): Promise<void> {
    if (record.retryTimer) clearTimeout(record.retryTimer)
    record.retryTimer = null
    record.nextRetryAt = null
    for (const unsubscribe of record.unsubscribe.splice(0)) unsubscribe()
    const live = record.live
    const host = record.host
    record.live = null
    record.host = null
    if (record.state === 'running' || record.state === 'restarting') record.state = 'stopped'
    try {
      await this.onStop(record.name, code, reason)
    } catch (err) {
      this.#options
        .loggerFor(record.name)
        .error("closing the plugin's sockets failed", { reason: (err as Error).message })
    }
    if (live?.instance.close) {
      try {
        await timeout(Promise.resolve().then(() => live.instance.close?.()), this.#options.closeTimeoutMs, 'close')
      } catch (err) {
        this.#options.loggerFor(record.name).error('plugin close failed', { reason: (err as Error).message })
      }
    }
    // Whether its close finished, failed or timed out, an isolated plugin's thread or process ends here.
    host?.terminate()
  }

  /** Closes every plugin in reverse order of registration, each with a timeout. */
  async close(): Promise<void> {
    this.#closed = true
    for (const record of [...this.#records].reverse()) {
      record.parked?.terminate()
      record.parked = null
      await this.#serialise(record, () => this.#stop(record, 1001, 'server shutting down'))
      if (record.state !== 'disabled' && record.state !== 'failed') record.state = 'stopped'
    }
  }
}
