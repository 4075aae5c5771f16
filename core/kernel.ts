// The kernel: one Fastify instance for every virtual site. It wires the request context
// (site, session, origin), the core routes and the error contract, and owns start and stop.
import Fastify, {
  LogController,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyServerOptions,
} from 'fastify'
import fastifyCookie from '@fastify/cookie'
import fastifyFormbody from '@fastify/formbody'
import fastifyWebsocket from '@fastify/websocket'
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { DEPENDENCIES, VERSION } from './package-info.js'
import type { FarmConfig } from './farm-config.js'
import { FilePageStore, type PageStore } from './pages/page-store.js'
import { PostgresPageStore } from './pages/postgres-store.js'
import { SiteRegistry } from './pages/sites.js'
import { StoreError, type StoreErrorCode } from './pages/store-error.js'
import { EventBus } from './pages/events.js'
import { DefaultPages } from './pages/default-pages.js'
import { SessionKeeper } from './http/sessions.js'
import { createGuards, registerRequestContext, type Guards } from './http/request-context.js'
import { findClientPlugins } from './client/plugins.js'
import { clientFileRoutes, packageFolder } from './client/files.js'
import { readClientAssets } from './client/shell.js'
import { lineupHandler, shellRoutes } from './client/shell-routes.js'
import { parseLineup } from './client/lineup.js'
import { SiteIndexes } from './pages/site-index.js'
import { ClusterBus } from './cluster/cluster-bus.js'
import { cachedPing, healthRoutes, type StoreHealth } from './routes/health-routes.js'
import { pageRoutes } from './routes/page-routes.js'
import { systemRoutes } from './routes/system-routes.js'
import { ownerRoutes } from './routes/owner-routes.js'
import { statusRoutes } from './routes/status-routes.js'
import { escapeHtml } from './client/page-html.js'
import { PluginRegistry } from './plugin-host/registry.js'
import { pluginScope } from './plugin-host/dispatch.js'
import { pluginLogger } from './plugin-host/context.js'
import { findLegacyPackages } from './plugin-host/legacy/packages.js'
import { LegacyPlugins } from './plugin-host/legacy/host.js'
import { legacyGrants } from './plugin-host/legacy/grants.js'
import { legacyRoutes } from './plugin-host/legacy/routes.js'
import { SocketHub, negotiateProtocol } from './sockets/socket-hub.js'
import { CLOSE } from './sockets/close-codes.js'
import { PushHub, pushRoutes } from './sockets/push-hub.js'
import { registerRateLimits } from './http/rate-limits.js'
import { registerUpgradeGuard } from './http/upgrade-guard.js'
import { lazyRequestLogger, registerAccessLog } from './http/access-log.js'
import { guardConnections, type ConnectionGuard } from './http/connection-guard.js'
import { websocketErrorHandler } from './sockets/websocket-errors.js'
import { PluginPlacement, singleNodeView, type NodeRef } from './cluster/placement.js'
import { Forwarder } from './cluster/forwarding.js'
import { registerMetrics } from './metrics/farm-metrics.js'
import {
  ERR_BAD_JSON,
  ERR_BAD_URL,
  ERR_PAYLOAD_TOO_LARGE,
  ERR_ROUTE_NOT_FOUND,
  ERR_UNSUPPORTED_MEDIA,
  ERR_URL_TOO_LONG,
  ERR_VALIDATION,
  isWikifarmError,
  ERR_PLUGIN_NOT_ENABLED,
} from './errors.js'

// What `import … from 'wikifarm'` gives beside createKernel: the config it takes (a plugin
// package's tests start a kernel with DEFAULTS and their grants).
export { DEFAULTS, type FarmConfig } from './farm-config.js'

export interface KernelOptions {
  /** A pino logger config or instance; false for silence (tests). */
  logger?: FastifyServerOptions['logger']
  /** The page store, owned by the caller; by default the kernel opens the one config.store names. */
  store?: PageStore
  /** Where built-in plugins are found (tests point it at fixtures); default plugins/. */
  builtinPluginsDir?: string
  /** Where wiki-plugin-* server parts are looked for (tests); default every node_modules from wikifarm's up. */
  legacyNodeModules?: string[]
}

export interface Kernel {
  readonly app: FastifyInstance
  readonly config: FarmConfig
  readonly sites: SiteRegistry
  readonly events: EventBus
  readonly guards: Guards
  readonly plugins: PluginRegistry
  readonly sockets: SocketHub
  /** Push subscriptions (GET /system/push) and what plugins publish to them. */
  readonly push: PushHub
  /** The wiki-plugin-* server parts, each started once (core/plugin-host/legacy/). */
  readonly legacy: LegacyPlugins
  /** Open HTTP connections per client address, and those refused over the cap. */
  readonly connections: ConnectionGuard
  /** On the PostgreSQL store: this node's share of the farm's events (null on the file store). */
  readonly cluster: ClusterBus | null
  /** Where one-node plugins run in a farm of many nodes (the PostgreSQL store); null on the file store. */
  readonly placement: PluginPlacement | null
  /** Starts listening; resolves to the address, e.g. http://127.0.0.1:3000. */
  listen(): Promise<string>
  /** Refuses new requests (503), lets pending writes finish, then closes. */
  close(): Promise<void>
}

/** This node as the farm's other nodes reach it: nodeUrl, else the host and port it listens on. */
export function nodeOf(config: FarmConfig, port: number): NodeRef {
  const wildcard = config.host === '0.0.0.0' || config.host === '::' || config.host === ''
  const host = wildcard ? hostname() : config.host
  const url = config.nodeUrl ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  return { id: new URL(url).host, url }
}

/** What a client is answered for each page store failure. */
const STORE_STATUS: Record<StoreErrorCode, number> = {
  WIKIFARM_ERR_STORE: 500,
  WIKIFARM_ERR_STORE_UNAVAILABLE: 503,
  WIKIFARM_ERR_UNSTORABLE: 422,
}

function errorBody(error: FastifyError): { status: number; body: Record<string, unknown> } {
  // The page store's errors carry no status (it knows nothing of HTTP): a storage failure is ours.
  if (error instanceof StoreError) {
    return { status: STORE_STATUS[error.code], body: { error: error.message, code: error.code } }
  }
  if (isWikifarmError(error)) {
    const body: Record<string, unknown> = { error: error.message, code: error.code }
    if (error.reason !== undefined) body.reason = error.reason
    return { status: error.statusCode, body }
  }
  if (error.validation) {
    return { status: 400, body: { error: `Invalid request: ${error.message}`, code: new ERR_VALIDATION('').code } }
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, body: { error: error.message, code: new ERR_PAYLOAD_TOO_LARGE(0).code } }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, body: { error: error.message, code: new ERR_UNSUPPORTED_MEDIA('').code } }
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, body: { error: error.message, code: new ERR_BAD_JSON('').code } }
    // The router's own errors (see frameworkErrors below): a bad %-escape, an overlong parameter.
    case 'FST_ERR_BAD_URL': {
      const coded = new ERR_BAD_URL('not a valid URL component')
      return { status: coded.statusCode, body: { error: coded.message, code: coded.code } }
    }
    case 'FST_ERR_MAX_PARAM_LENGTH': {
      const coded = new ERR_URL_TOO_LONG('over 500 characters')
      return { status: coded.statusCode, body: { error: coded.message, code: coded.code } }
    }
  }
  const status = error.statusCode ?? 500
  if (status >= 400 && status < 500) {
    // Fastify's own client errors (bad JSON, prototype poisoning, bad headers) keep their status.
    const code =
      error instanceof SyntaxError || /JSON|prototype|constructor/i.test(error.message)
        ? 'WIKIFARM_ERR_BAD_JSON'
        : 'WIKIFARM_ERR_BAD_REQUEST'
    return { status, body: { error: error.message, code } }
  }
  return { status: 500, body: { error: 'Internal server error', code: 'WIKIFARM_ERR_INTERNAL' } }
}

function unknownSitePage(message: string): string {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>No such wiki</title></head>
<body style="font-family:sans-serif;margin:3em auto;max-width:36em">
<h1>No such wiki</h1><p>${escapeHtml(message)}.</p>
<p>This farm serves only the wikis its operator has allowed. Check the address.</p>
<p><code>WIKIFARM_ERR_UNKNOWN_SITE</code></p></body></html>
`
}

export async function createKernel(config: FarmConfig, options: KernelOptions = {}): Promise<Kernel> {
  const app = Fastify({
    logger: options.logger ?? { level: config.logLevel },
    // The kernel logs one line per request itself, after the site is known (onResponse), and
    // a request's child logger is made only if something logs through it (access-log.ts).
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyRequestLogger,
    bodyLimit: config.uploadLimit,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    trustProxy: config.trustProxy,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
    return503OnClosing: true,
    // Deadlines on what a client sends, so a slow sender cannot hold a connection: Fastify's
    // own requestTimeout is 0 (none), and Node checks its deadlines only every 30 s by default.
    requestTimeout: Math.round(config.requestSeconds * 1000),
    keepAliveTimeout: Math.round(config.keepAliveSeconds * 1000),
    connectionTimeout: Math.round(config.socketIdleSeconds * 1000),
    http: {
      headersTimeout: Math.round(config.headerSeconds * 1000),
      // A quarter of the shortest deadline, at most a second: a deadline is kept within 25 %.
      connectionsCheckingInterval: Math.max(50, Math.min(1000,
        Math.round(Math.min(config.headerSeconds, config.requestSeconds) * 250))),
    },
    // Errors the router raises before any hook runs answer in the kernel's shape too.
    frameworkErrors: (error, _request, reply) => {
      const { status, body } = errorBody(error)
      void (reply as FastifyReply).code(status).type('application/json; charset=utf-8').send(body)
    },
  })
  // Behind a trusted proxy every connection comes from the proxy: the proxy caps them there.
  const connections = guardConnections(app.server, config.trustProxy ? 0 : config.connectionsPerIp)
  const events = new EventBus(({ owner, event, error }) => {
    app.log.error({ err: error, owner, event }, `event listener of ${owner} failed on ${event}`)
  })
  // A store the kernel opens is the kernel's to close; one handed in is its caller's.
  const ownsStore = options.store === undefined
  const store = options.store ?? (config.store
    ? await PostgresPageStore.open(config.store, {
      onIdleError: (err) =>
        app.log.warn({ code: 'WIKIFARM_ERR_STORE_UNAVAILABLE', err }, 'a PostgreSQL connection broke'),
    })
    : new FilePageStore({ cacheBytes: config.cacheBytes }))
  const clientScan = await findClientPlugins()
  for (const problem of clientScan.problems) app.log.warn({ code: 'WIKIFARM_CLIENT_PLUGIN' }, problem)
  const clientPlugins = clientScan.plugins
  // A page the operator cannot fix (in a package wikifarm bundles: wiki-plugin-chart's
  // garden-report has numeric item ids) is noted at debug; one of a package they added, a warning.
  const bundledPages = new Set(clientPlugins.filter((p) => DEPENDENCIES.has(p.source)).map((p) => p.pagesDir))
  const defaults = await DefaultPages.load(undefined, clientPlugins.flatMap((p) => (p.pagesDir ? [p.pagesDir] : [])),
    (problem, pluginDir) => {
      if (bundledPages.has(pluginDir)) app.log.debug({ code: 'WIKIFARM_CLIENT_PLUGIN' }, problem)
      else app.log.warn({ code: 'WIKIFARM_CLIENT_PLUGIN' }, problem)
    })
  const sites = new SiteRegistry({
    data: config.data,
    farm: config.farm,
    allowed: config.allowed,
    wikiDomains: Object.keys(config.wikiDomains).map((d) => d.toLowerCase()),
    idleMs: config.idleSeconds * 1000,
    limits: { itemBytes: config.itemLimit, pageBytes: config.pageLimit, actionBytes: config.actionLimit },
  }, store, events, defaults)
  // On PostgreSQL, other nodes may write the same sites: their changes reach this node's bus and
  // caches (core/cluster/), and what a site keeps in memory is checked fresh before it is used.
  const cluster = store instanceof PostgresPageStore
    ? new ClusterBus(store, sites, events, {
      info: (message) => app.log.info({ code: 'WIKIFARM_CLUSTER' }, message),
      warn: (message, err) => app.log.warn({ code: 'WIKIFARM_ERR_STORE_UNAVAILABLE', err }, message),
    })
    : null
  if (cluster) {
    sites.sync = () => cluster.sync()
    await cluster.start()
  }
  const sessionMs = config.session_duration * 24 * 3600 * 1000
  const sessions = new SessionKeeper(config.cookieSecret, sessionMs, config.secure_cookie)
  const guards = createGuards(config, sessions)
  const wikiClientDir = packageFolder('wiki-client')
  const securityDir = packageFolder('wiki-security-friends')
  if (!wikiClientDir) app.log.warn('wiki-client is not installed: pages are served as JSON and plain HTML only')
  const shell = { guards, assets: await readClientAssets(wikiClientDir), neighbors: config.neighbors }
  let closing = false
  const hub = new SocketHub({
    maxPayload: config.maxPayload,
    sendBufferBytes: config.sendBufferBytes,
    pingIntervalMs: config.pingIntervalSeconds * 1000,
    maxInvalidFrames: 10,
  })
  // A published message may be as big as a frame a client may send.
  const push = new PushHub({ maxFrameBytes: config.maxPayload })
  // The legacy server parts start unless the operator says not (--legacyPlugins false), or a test names them.
  const legacyPackages = config.legacyPlugins || options.legacyNodeModules
    ? await findLegacyPackages(options.legacyNodeModules) : []
  const plugins = new PluginRegistry({
    grants: config.plugins,
    launchTimeoutMs: config.pluginLaunchTimeoutMs,
    closeTimeoutMs: config.pluginCloseTimeoutMs,
    // An isolated plugin's own deadline comes after the kernel's 504, so the client hears first.
    isolation: {
      callTimeoutMs: config.pluginHandlerTimeoutMs + 1000,
      heartbeatDeadlineMs: config.pluginHeartbeatTimeoutMs,
      heartbeatMs: Math.max(50, Math.min(1000, Math.floor(config.pluginHeartbeatTimeoutMs / 4))),
    },
    restart: { limit: config.pluginRestartLimit },
    builtinDir: options.builtinPluginsDir,
    legacyNames: new Set(legacyPackages.map((p) => p.name)),
    dataDir: config.data,
    log: pluginLogger(app.log),
    loggerFor: (name) => pluginLogger(app.log.child({ plugin: name })),
    push,
  }, sites, events)
  // In a farm of many nodes, a one-node plugin launches only on the node elected to run it.
  const placement = config.store
    ? new PluginPlacement({
      storeUrl: config.store,
      registry: plugins,
      log: pluginLogger(app.log.child({ placement: true })),
      forwarding: config.pluginForwarding,
      // wikifarm_node_role: "owner" while this node runs a one-node plugin for the farm.
      onOwnerChange: (owner) => app.metrics.setNodeRole(owner ? 'owner' : 'member'),
    })
    : null
  if (placement) plugins.launchGate = (record) => placement.gate(record)
  const forwarder = new Forwarder({
    secret: config.cookieSecret,
    node: () => placement?.node ?? null,
    maxPayload: config.maxPayload,
    sendBufferBytes: config.sendBufferBytes,
    timeoutMs: config.pluginHandlerTimeoutMs + 5000,
  })
  // A site with live connections is in use even when no request has come for a while.
  sites.inUse = (name) => hub.servesSite(name)
  plugins.onStop = (name, code, reason) => hub.closeAll(code, reason, name, config.pluginCloseTimeoutMs)
  // Before any route is added and any site opens (core/metrics/): a no-op without --metricsPort.
  registerMetrics(app, { config, sites, plugins, sockets: hub, store })
  // Every plugin is found, validated and launched once, now: before the farm listens and
  // before any site is visited.
  await plugins.discover()
  await plugins.launchAll()
  // One-node plugins (in standby until now): launched here if this node wins them.
  await placement?.start(nodeOf(config, config.port))
  // The existing federated-wiki server parts, once each, after wikifarm's own plugins, whose
  // names they may not take.
  const builtins = new Set(plugins.records().filter((r) => r.source.startsWith('built-in')).map((r) => r.name))
  const legacy = new LegacyPlugins({
    config,
    packages: legacyPackages,
    builtins,
    launchTimeoutMs: config.pluginLaunchTimeoutMs,
    isolation: config.legacyIsolation,
    handlerTimeoutMs: config.pluginHandlerTimeoutMs,
    heartbeatDeadlineMs: config.pluginHeartbeatTimeoutMs,
    log: pluginLogger(app.log.child({ legacy: true })),
    address: () => (app.server.listening ? app.server.address() : null),
  }, legacyGrants(config.plugins, new Set(legacyPackages.map((p) => p.name).filter((n) => !builtins.has(n)))))
  await legacy.launchAll()

  await app.register(fastifyCookie, { secret: config.cookieSecret })
  await app.register(fastifyFormbody, { bodyLimit: config.uploadLimit })
  await app.register(fastifyWebsocket, {
    options: { maxPayload: config.maxPayload, handleProtocols: negotiateProtocol },
    // Lets the close frame of a refused frame (1009, 1007) reach the client: see websocket-errors.ts.
    errorHandler: websocketErrorHandler,
    // Shutdown closes every socket with 1001 (going away), and waits for their close
    // handlers, before plugins are closed.
    preClose: (done) => {
      legacy.endSockets()
      void hub
        .closeAll(CLOSE.GOING_AWAY, 'server shutting down', undefined, config.pluginCloseTimeoutMs)
        .then(() => done())
    },
  })
  registerRequestContext(app, { config, sites, sessions, isClosing: () => closing })
  // After the request context: upgrades to plain routes are refused, and limits count only
  // requests for a served site from an allowed origin.
  registerUpgradeGuard(app)
  registerRateLimits(app, config, (request) => forwarder.verify(request) === true)

  // Reads are public and federated: other sites' clients fetch them cross-origin, without
  // credentials, as they do from the reference server.
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.method === 'GET' || request.method === 'HEAD') reply.header('access-control-allow-origin', '*')
    return payload
  })

  registerAccessLog(app)

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const { status, body } = errorBody(error)
    if (status >= 500 && status !== 503) request.log.error({ err: error, site: request.site?.name }, 'request failed')
    // A person who typed the name of a wiki this farm does not serve gets a page, not JSON.
    if (
      body.code === 'WIKIFARM_ERR_UNKNOWN_SITE' &&
      request.method === 'GET' &&
      (request.headers.accept ?? '').includes('text/html')
    ) {
      return reply
        .code(status)
        .type('text/html; charset=utf-8')
        .send(unknownSitePage(String(body.error)))
    }
    return reply.code(status).type('application/json; charset=utf-8').send(body)
  })
  app.setNotFoundHandler(async (request, reply) => {
    // A lineup that starts on another site (/fed.wiki.org/a-page/view/b-page) has no fixed
    // prefix to route on, so it is recognised here, after every route has failed.
    const path = request.url.split('?')[0] ?? ''
    if (request.method === 'GET' && request.site && parseLineup(path)) return serveLineup(request, reply, path)
    const plugin = /^\/plugin\/([^/?]*)/.exec(request.url)?.[1]
    const error = plugin !== undefined
      ? new ERR_PLUGIN_NOT_ENABLED(`no plugin named ${JSON.stringify(plugin.slice(0, 60))}`)
      : new ERR_ROUTE_NOT_FOUND(`${request.method} ${request.url.slice(0, 200)}`)
    return reply.code(404).send({ error: error.message, code: error.code })
  })

  const serveLineup = lineupHandler(shell)
  const versions = { wikifarm: VERSION, node: process.version }
  await app.register(pageRoutes, { guards })
  await app.register(systemRoutes, {
    guards,
    clientPlugins,
    siteIndexes: new SiteIndexes(events),
    home: config.home,
    versions,
  })
  await app.register(shellRoutes, shell)
  await app.register(clientFileRoutes, {
    clientPlugins,
    clientDir: wikiClientDir === null ? null : `${wikiClientDir}/client`,
    securityDir: securityDir === null ? null : `${securityDir}/client`,
  })
  await app.register(ownerRoutes, { config, sessions, guards })
  await app.register(statusRoutes, {
    guards, plugins, legacy, sites, hub, connections,
    placement: (record) => placement?.view(record) ?? singleNodeView(record),
    node: () => placement?.node ?? null,
  })
  const ping = store instanceof PostgresPageStore ? cachedPing(() => store.ping()) : null
  await app.register(healthRoutes, {
    plugins,
    store: async (): Promise<StoreHealth> => cluster && ping
      ? { type: 'postgres', reachable: await ping(), events: cluster.state, node: cluster.nodeId }
      : { type: 'files', reachable: true },
  })
  await app.register(legacyRoutes, { legacy, guards, config, handlerTimeoutMs: config.pluginHandlerTimeoutMs })
  const labelKey = randomBytes(32)
  await app.register(pushRoutes, { push, hub, sites, guards, labelKey })
  for (const record of plugins.records()) {
    await app.register(pluginScope, {
      prefix: `/plugin/${record.name}`,
      record,
      guards,
      hub,
      events,
      sites,
      push,
      labelKey,
      handlerTimeoutMs: config.pluginHandlerTimeoutMs,
      forwarder,
      ...(placement ? { route: (r: typeof record) => placement.route(r) } : {}),
    })
  }

  return {
    app, config, sites, events, guards, plugins, sockets: hub, push, legacy, connections, cluster, placement,
    async listen() {
      const address = await app.listen({ port: config.port, host: config.host })
      // On port 0 the address the other nodes forward to is known only now.
      const bound = app.server.address()
      await placement?.moved(nodeOf(config, typeof bound === 'object' && bound ? bound.port : config.port))
      return address
    },
    async close() {
      closing = true
      await placement?.stop()
      await app.close()
      await plugins.close()
      // After the plugins closed (the device is free): the session ends, and its locks with it.
      await placement?.close()
      await legacy.close()
      await sites.close()
      await cluster?.close()
      if (ownsStore) await store.close()
    },
  }
}
