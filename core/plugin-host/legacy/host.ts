// The legacy adapter's launcher: each installed wiki-plugin-* server part is started once, at
// kernel start, with what the reference gives it per site: startServer({argv, app, packageJson})
// with `app` a real Express 5 application. A start that throws, rejects or hangs marks the
// plugin failed with its reason and the farm serves on; so does a later process.exit.
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import express, { type Express } from 'express'
import type { FarmConfig } from '../../farm-config.js'
import type { PluginLogger } from '../../plugin-api.js'
import { PACKAGE_ROOT } from '../../package-info.js'
import { farmArgv, type LegacyArgv } from './argv.js'
import { scopedArgv } from './scope.js'
import { deadline } from '../../deadline.js'
import { pageHandler, securityHandler } from './handlers.js'
import { guardExit } from './exit-guard.js'
import { fenced } from './fault-guard.js'
import type { LegacyPackage } from './packages.js'
import { legacyScope, type LegacyRequestFacts } from './scope.js'

export type LegacyState = 'disabled' | 'launching' | 'running' | 'failed' | 'stopped'

/** One legacy plugin's line in /system/status.json. */
export interface LegacyStatus {
  name: string
  source: string
  legacy: true
  /** 'farm': one instance for every site. */
  mode: 'farm'
  state: LegacyState
  reason: string | null
  launchedAt: string | null
  launches: number
  /** Exceptions its code threw (in handlers, callbacks, timers), contained; the last one's message. */
  faults: number
  lastFault: string | null
  isolation: 'none'
  trust: 'farm'
  sites: string[] | '*'
}

/** The operator's grant for a legacy plugin: only these keys mean something for one. */
export interface LegacyGrant {
  enabled?: boolean
  sites?: string[] | '*'
}

export class LegacyPlugin {
  readonly pkg: LegacyPackage
  readonly grant: LegacyGrant
  state: LegacyState = 'stopped'
  reason: string | null = null
  launchedAt: Date | null = null
  launches = 0
  faults = 0
  lastFault: string | null = null
  /** The plugin's Express app, once started. */
  app: Express | null = null

  constructor(pkg: LegacyPackage, grant: LegacyGrant) {
    this.pkg = pkg
    this.grant = grant
  }

  get name(): string {
    return this.pkg.name
  }

  servesSite(site: string): boolean {
    const sites = this.grant.sites ?? '*'
    return sites === '*' || sites.includes(site)
  }

  status(): LegacyStatus {
    return {
      name: this.name, source: `legacy ${this.pkg.packageName}@${this.pkg.version}`, legacy: true, mode: 'farm',
      state: this.state, reason: this.reason, launchedAt: this.launchedAt?.toISOString() ?? null,
      launches: this.launches,
      faults: this.faults, lastFault: this.lastFault, isolation: 'none', trust: 'farm', sites: this.grant.sites ?? '*',
    }
  }
}

export interface LegacyHostOptions {
  config: FarmConfig
  packages: LegacyPackage[]
  /** Names of wikifarm's own plugins: a legacy server part of the same name is not started. */
  builtins: ReadonlySet<string>
  launchTimeoutMs: number
  log: PluginLogger
}

interface RequestWithSession extends IncomingMessage {
  session?: { friend?: string }
}

function timeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return deadline(promise, ms, () => { throw new Error(`startServer did not finish within ${ms} ms`) })
}

export class LegacyPlugins {
  readonly #plugins: LegacyPlugin[]
  readonly #options: LegacyHostOptions
  readonly #farmId = randomBytes(8).toString('hex')
  /** The facts of each request being served, by the request object Express is given. */
  readonly #facts = new WeakMap<IncomingMessage, LegacyRequestFacts>()
  readonly farmArgv: LegacyArgv
  #releaseExit: () => void = () => {}

  constructor(options: LegacyHostOptions, grants: Record<string, LegacyGrant>) {
    this.#options = options
    this.#plugins = options.packages.map((pkg) => new LegacyPlugin(pkg, grants[pkg.name] ?? {}))
    this.farmArgv = farmArgv(options.config, options.packages[0]?.packageDir ?? join(PACKAGE_ROOT, 'node_modules'))
    for (const plugin of this.#plugins) {
      if (options.builtins.has(plugin.name)) {
        plugin.state = 'disabled'
        plugin.reason = `wikifarm's built-in ${plugin.name} plugin serves /plugin/${plugin.name}`
      } else if (plugin.grant.enabled === false) {
        plugin.state = 'disabled'
        plugin.reason = 'disabled by the operator'
      }
    }
  }

  /** The plugins whose routes the kernel serves: not replaced by a built-in. */
  served(): LegacyPlugin[] {
    return this.#plugins.filter((p) => !this.#options.builtins.has(p.name))
  }

  get(name: string): LegacyPlugin | undefined {
    return this.#plugins.find((p) => p.name === name)
  }

  statuses(): LegacyStatus[] {
    return this.#plugins.map((p) => p.status())
  }

  /** Marks a plugin failed; its routes answer 503 with the reason from now on. */
  fail(name: string, reason: string): void {
    const plugin = this.get(name)
    if (!plugin || plugin.state === 'failed') return
    plugin.state = 'failed'
    plugin.reason = reason
    plugin.app = null
    this.#options.log.error('legacy plugin failed', { plugin: name, reason })
  }

  /** Counts an exception a plugin's code threw and that the fence contained. */
  fault(name: string, err: unknown): void {
    const plugin = this.get(name)
    if (!plugin) return
    plugin.faults++
    plugin.lastFault = String((err as Error)?.message ?? err).split(/\r?\n/, 1)[0]?.slice(0, 300) ?? null
  }

  /** Runs `fn` as the plugin serving a request with these facts. */
  serve<T>(plugin: LegacyPlugin, req: IncomingMessage, facts: LegacyRequestFacts, fn: () => T): T {
    this.#facts.set(req, facts)
    return legacyScope.run({ farm: this.#farmId, plugin: plugin.name, request: facts }, fn)
  }

  async launchAll(): Promise<void> {
    this.#releaseExit = guardExit(this.#farmId,
      (plugin, code) => this.fail(plugin, `called process.exit(${String(code ?? '')})`))
    const packageJson: unknown = JSON.parse(await readFile(join(PACKAGE_ROOT, 'package.json'), 'utf8'))
    await Promise.all(this.#plugins.filter((p) => p.state === 'stopped').map((p) => this.#launch(p, packageJson)))
  }

  #app(): Express {
    const { config } = this.#options
    const app = express()
    app.disable('x-powered-by')
    // As the reference's site app does before any plugin route: JSON and form bodies parsed, the
    // session the security plugin fills.
    app.use(express.json({ limit: config.uploadLimit }))
    app.use(express.urlencoded({ extended: true, limit: config.uploadLimit }))
    app.use((req, _res, next) => {
      const facts = this.#facts.get(req)
      ;(req as RequestWithSession).session = facts?.friend ? { friend: facts.friend } : {}
      next()
    })
    const factsOf = (req: IncomingMessage | undefined): LegacyRequestFacts | null =>
      (req ? this.#facts.get(req) : undefined) ?? legacyScope.getStore()?.request ?? null
    Object.assign(app, { securityhandler: securityHandler(factsOf), pagehandler: pageHandler() })
    return app
  }

  async #launch(plugin: LegacyPlugin, packageJson: unknown): Promise<void> {
    plugin.state = 'launching'
    const app = this.#app()
    const argv = scopedArgv(this.farmArgv)
    try {
      // What the start leaves running (timers, fetches: plugmatic parses a download in a
      // callback) stays fenced: a throw there is counted, not fatal to the farm.
      const onFault = (err: unknown): void => {
        this.fault(plugin.name, err)
        this.#options.log.error('legacy plugin threw outside a request',
          { plugin: plugin.name, reason: plugin.lastFault })
      }
      const scope = { farm: this.#farmId, plugin: plugin.name, request: null }
      await legacyScope.run(scope, () => fenced(onFault, [], async () => {
        type ServerModule = { startServer?: unknown; default?: { startServer?: unknown } }
        const loaded = await import(pathToFileURL(plugin.pkg.server).href) as ServerModule
        // An ES module exports it by name; a CommonJS one (the 2016 plugins) on module.exports.
        const found = loaded.startServer ?? loaded.default?.startServer
        if (typeof found !== 'function') throw new Error('server/server.js exports no startServer function')
        const start = found as (params: { argv: LegacyArgv; app: Express; packageJson: unknown }) => unknown
        await timeout(Promise.resolve().then(() => start({ argv, app, packageJson })), this.#options.launchTimeoutMs)
      }))
      // A process.exit during start has already marked it failed.
      if (plugin.state !== 'launching') return
      plugin.app = app
      plugin.state = 'running'
      plugin.launchedAt = new Date()
      plugin.launches++
      const pkg = `${plugin.pkg.packageName}@${plugin.pkg.version}`
      this.#options.log.info('legacy plugin launched', { plugin: plugin.name, package: pkg })
    } catch (err) {
      this.fail(plugin.name, `startServer failed: ${String((err as Error)?.message ?? err).split(/\r?\n/, 1)[0]}`)
    }
  }

  close(): void {
    for (const plugin of this.#plugins) {
      if (plugin.state === 'running') plugin.state = 'stopped'
      plugin.app = null
    }
    this.#releaseExit()
  }
}
