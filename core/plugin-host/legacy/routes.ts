// Where the kernel hands a request to a legacy plugin's Express app: `/plugin/<name>` and
// below (every method), and the state-changing methods under `/plugins/<name>/` (the image
// upload posts there; GETs under it stay the kernel's client files). These are ordinary Fastify
// routes, so the site, session, Origin and rate-limit hooks have run before, and no kernel
// route is ever shadowed. The body is left unread for Express (multer, body-parser) to parse;
// its declared length is capped at the farm's upload limit.
import { createHash } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Guards } from '../../http/request-context.js'
import { matchDomain } from '../../pages/sites.js'
import {
  ERR_LEGACY_REFUSED, ERR_LENGTH_REQUIRED, ERR_PAYLOAD_TOO_LARGE, ERR_PLUGIN_FAILED, ERR_PLUGIN_NOT_ENABLED,
  ERR_PLUGIN_ROUTE, ERR_PLUGIN_TIMEOUT, ERR_PLUGIN_UNAVAILABLE, ERR_ROUTE_NOT_FOUND,
} from '../../errors.js'
import type { FarmConfig } from '../../farm-config.js'
import { siteArgv } from './argv.js'
import type { LegacyInstance, LegacyPlugin, LegacyPlugins } from './host.js'
import { legacyScope, type LegacyRequestFacts } from './scope.js'
import { LegacyExitRefused } from './exit-guard.js'
import { fenced } from './fault-guard.js'
import { SiteFolders } from './site-folders.js'
import { refusalFor } from './refusals.js'

const WRITE_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE'] as const

interface Coded { message: string; code: string; statusCode: number; reason?: string }

function sendCoded(res: ServerResponse, error: Coded): void {
  if (res.headersSent || res.writableEnded) {
    if (!res.writableEnded) res.end()
    return
  }
  const body: Record<string, unknown> = { error: error.message, code: error.code }
  if (error.reason !== undefined) body.reason = error.reason
  res.statusCode = error.statusCode
  res.setHeader('content-type', 'application/json; charset=utf-8')
  res.end(JSON.stringify(body))
}

/**
 * A token standing for the friend secret the session proved: what friends keeps in
 * req.session.friend, minus the secret.
 */
function friendToken(friend: string | null): string | null {
  if (friend === null) return null
  return createHash('sha256').update(`legacy-friend:${friend}`).digest('base64url').slice(0, 22)
}

export async function legacyRoutes(app: FastifyInstance, opts: {
  legacy: LegacyPlugins
  guards: Guards
  config: FarmConfig
  handlerTimeoutMs: number
}): Promise<void> {
  const { legacy, guards, config } = opts
  const domains = Object.keys(config.wikiDomains).map((d) => d.toLowerCase())
  const folders = new SiteFolders()
  // The bytes that came after an upgrade request's head (ws's `head`): Node hands them to the
  // server's 'upgrade' listeners only, so they are noted before the kernel's listener routes it.
  const heads = new WeakMap<IncomingMessage, Buffer>()
  if (legacy.served().length > 0) {
    app.server.prependListener('upgrade', (req: IncomingMessage, _socket: unknown, head: Buffer) => {
      if (head.length > 0) heads.set(req, head)
    })
  }
  // The body stays in the socket for the plugin's own parsers.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined))

  /** What the plugin is given about this request, after the checks every legacy request passes. */
  async function admit(plugin: LegacyPlugin, request: FastifyRequest): Promise<{
    facts: LegacyRequestFacts; instance: LegacyInstance
  }> {
    if (!plugin.servesSite(request.site.name) || plugin.state === 'disabled') {
      throw new ERR_PLUGIN_NOT_ENABLED(`${plugin.name} on ${request.site.name}`)
    }
    const unavailable = (reason: string | null): Error =>
      Object.assign(new ERR_PLUGIN_UNAVAILABLE(plugin.name), { reason: reason ?? plugin.state })
    if (plugin.state !== 'running') throw unavailable(plugin.reason)
    const refusal = refusalFor(plugin.name, request.method, request.url.split('?')[0] ?? '')
    if (refusal) throw new ERR_LEGACY_REFUSED(refusal.reason)
    const authorized = await guards.requireOwner(request).then(() => true, () => false)
    const site = request.site
    const argv = siteArgv(legacy.farmArgv, site.root, site.name, matchDomain(site.name, domains))
    const friend = friendToken(request.session.friend)
    const facts = { site, authorized, admin: guards.isAdmin(request), friend, argv }
    const instance = await legacy.instanceFor(plugin, facts)
    if (!instance) throw unavailable(plugin.failedSites.get(site.name) ?? plugin.reason)
    return { facts, instance }
  }

  /**
   * A websocket upgrade to the plugin's paths: emitted on its params.server, where the plugin's
   * own ws server (if it made one) completes the handshake. Runs as a preHandler, so every
   * onRequest check (site, Origin, rate limits, connection caps) has passed and the kernel's
   * websocket library never sees the request.
   */
  async function upgrade(plugin: LegacyPlugin, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!request.ws) return
    const { facts, instance } = await admit(plugin, request)
    if (!instance.server.takesUpgrades) {
      throw new ERR_ROUTE_NOT_FOUND(`websocket ${request.url.slice(0, 200)}: ${plugin.name} takes no websockets`)
    }
    const req = request.raw
    const socket = req.socket
    const head = heads.get(req) ?? Buffer.alloc(0)
    reply.hijack()
    instance.sockets.add(socket)
    socket.once('close', () => instance.sockets.delete(socket))
    // The socket's events (and so the plugin's 'message' listeners) run as this request:
    // the site's argv, the exit guard and the fence follow them.
    const emit = socket.emit.bind(socket)
    const onFault = (err: unknown): void => {
      // A refused process.exit has already stopped the plugin (or the site's instance).
      if (!(err instanceof LegacyExitRefused)) {
        legacy.fault(plugin.name, err)
        request.log.error({ err, plugin: plugin.name, site: request.site.name }, 'legacy plugin threw on a websocket')
      }
      socket.destroy()
    }
    legacy.serve(plugin, req, facts, () => fenced(onFault, [socket], () => {
      const served = legacyScope.getStore()
      socket.emit = ((event: string | symbol, ...args: unknown[]) =>
        served ? legacyScope.run(served, () => emit(event, ...args)) : emit(event, ...args)) as typeof socket.emit
      instance.server.emit('upgrade', req, socket, head)
    }))
  }

  async function handle(plugin: LegacyPlugin, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    // The body's length must be known up front: Node ends the body at Content-Length, so the
    // cap holds without reading it here (a counting listener would start the stream flowing
    // before the plugin's parser is attached, and lose what it counted). Browsers' uploads
    // (fetch, forms) always send one.
    const length = Number(request.headers['content-length'] ?? 0)
    const { facts, instance } = await admit(plugin, request)
    if (request.headers['transfer-encoding'] !== undefined && request.headers['content-length'] === undefined) {
      throw new ERR_LENGTH_REQUIRED('legacy plugins take bodies of a declared length')
    }
    if (length > config.uploadLimit) throw new ERR_PAYLOAD_TOO_LARGE(config.uploadLimit)
    const site = request.site
    if (WRITE_METHODS.some((m) => m === request.method)) await folders.prepare(plugin.name, site.name, site.root)
    const app = instance.app
    const req = request.raw
    const res = reply.raw
    reply.hijack()
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        sendCoded(res, new ERR_PLUGIN_TIMEOUT(plugin.name))
        resolve()
      }, opts.handlerTimeoutMs)
      res.on('close', () => { clearTimeout(timer); resolve() })
      const done = (err?: unknown): void => {
        if (err instanceof LegacyExitRefused || plugin.state === 'failed' || instance.state === 'failed') {
          const reason = instance.reason ?? plugin.reason ?? 'failed'
          sendCoded(res, Object.assign(new ERR_PLUGIN_UNAVAILABLE(plugin.name), { reason }))
        } else if (err) {
          const status = (err as { status?: unknown }).status
          if (status === 413) sendCoded(res, new ERR_PAYLOAD_TOO_LARGE(config.uploadLimit))
          else if (typeof status === 'number' && status >= 400 && status < 500) {
            const message = String((err as Error).message).slice(0, 200)
            sendCoded(res, { message, code: 'WIKIFARM_ERR_BAD_REQUEST', statusCode: status })
          } else {
            request.log.error({ err, plugin: plugin.name, site: request.site.name }, 'legacy plugin handler failed')
            sendCoded(res, new ERR_PLUGIN_FAILED(plugin.name))
          }
        } else {
          sendCoded(res, new ERR_PLUGIN_ROUTE(`${request.method} ${request.url.split('?')[0]?.slice(0, 200) ?? ''}`))
        }
      }
      // An exception from any callback the handler starts answers this request with 500 and
      // is counted against the plugin; the farm and the plugin's other requests carry on.
      const onFault = (err: unknown): void => {
        if (err instanceof LegacyExitRefused) return done(err)
        legacy.fault(plugin.name, err)
        request.log.error({ err, plugin: plugin.name, site: request.site.name }, 'legacy plugin threw')
        sendCoded(res, new ERR_PLUGIN_FAILED(plugin.name))
      }
      legacy.serve(plugin, req, facts, () => fenced(onFault, [req, res], () => {
        // Express turns Node's request and response into its own (it sets their prototypes).
        app(req as Parameters<typeof app>[0], res as Parameters<typeof app>[1], done)
      }))
    })
  }

  for (const plugin of legacy.served()) {
    const handler = (request: FastifyRequest, reply: FastifyReply): Promise<void> => handle(plugin, request, reply)
    // Upgrades pass the kernel's upgrade guard here (config.websocket) and go to the plugin's
    // params.server in the preHandler; a plugin with no ws server refuses them with 404 there.
    const routeOptions = {
      config: { websocket: true },
      preHandler: (request: FastifyRequest, reply: FastifyReply): Promise<void> => upgrade(plugin, request, reply),
    }
    app.all(`/plugin/${plugin.name}`, routeOptions, handler)
    app.all(`/plugin/${plugin.name}/*`, routeOptions, handler)
    app.route({ method: [...WRITE_METHODS], url: `/plugins/${plugin.name}/*`, handler })
  }
}
