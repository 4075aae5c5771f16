// Where the kernel hands a request to a legacy plugin's Express app: `/plugin/<name>` and
// below (every method), and the state-changing methods under `/plugins/<name>/` (the image
// upload posts there; GETs under it stay the kernel's client files). These are ordinary Fastify
// routes, so the site, session, Origin and rate-limit hooks have run before, and no kernel
// route is ever shadowed. The body is left unread for Express (multer, body-parser) to parse;
// its declared length is capped at the farm's upload limit.
import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Guards } from '../../http/request-context.js'
import { matchDomain } from '../../pages/sites.js'
import {
  ERR_LEGACY_REFUSED, ERR_LENGTH_REQUIRED, ERR_PAYLOAD_TOO_LARGE, ERR_PLUGIN_NOT_ENABLED, ERR_ROUTE_NOT_FOUND,
} from '../../errors.js'
import type { FarmConfig } from '../../farm-config.js'
import { siteArgv } from './argv.js'
import type { LegacyInstance, LegacyPlugin, LegacyPlugins } from './host.js'
import type { LegacyRequestFacts } from './scope.js'
import type { ForwardedFacts } from './child-protocol.js'
import { runningInstance, serveHttp, serveUpgrade, type ServeLog } from './serve.js'
import { SiteFolders } from './site-folders.js'
import { refusalFor } from './refusals.js'

const WRITE_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE'] as const

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

  /** The checks every legacy request passes here, and what the kernel decided about it. */
  async function decide(plugin: LegacyPlugin, request: FastifyRequest): Promise<LegacyRequestFacts> {
    if (!plugin.servesSite(request.site.name) || plugin.state === 'disabled') {
      throw new ERR_PLUGIN_NOT_ENABLED(`${plugin.name} on ${request.site.name}`)
    }
    const refusal = refusalFor(plugin.name, request.method, request.url.split('?')[0] ?? '')
    if (refusal) throw new ERR_LEGACY_REFUSED(refusal.reason)
    const authorized = await guards.requireOwner(request).then(() => true, () => false)
    const site = request.site
    const argv = siteArgv(legacy.farmArgv, site.root, site.name, matchDomain(site.name, domains))
    const friend = friendToken(request.session.friend)
    return { site, authorized, admin: guards.isAdmin(request), friend, argv }
  }

  /** The facts as the legacy child is told them (child-protocol.ts). */
  function forwarded(plugin: LegacyPlugin, facts: LegacyRequestFacts): Omit<ForwardedFacts, 'token'> {
    return {
      plugin: plugin.name, site: facts.site.name, root: facts.site.root,
      wikiDomain: matchDomain(facts.site.name, domains), authorized: facts.authorized, admin: facts.admin,
      friend: facts.friend,
    }
  }

  /** In this thread: what the plugin is given about this request, and the instance that serves it. */
  async function admit(plugin: LegacyPlugin, request: FastifyRequest): Promise<{
    facts: LegacyRequestFacts; instance: LegacyInstance
  }> {
    const facts = await decide(plugin, request)
    return { facts, instance: await runningInstance(legacy, plugin, facts) }
  }

  const logOf = (request: FastifyRequest): ServeLog => (message, data) => request.log.error(data, message)

  /**
   * A websocket upgrade to the plugin's paths: emitted on its params.server, where the plugin's
   * own ws server (if it made one) completes the handshake. Runs as a preHandler, so every
   * onRequest check (site, Origin, rate limits, connection caps) has passed and the kernel's
   * websocket library never sees the request.
   */
  async function upgrade(plugin: LegacyPlugin, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!request.ws) return
    const req = request.raw
    const head = heads.get(req) ?? Buffer.alloc(0)
    const child = legacy.child
    if (child) {
      const facts = await decide(plugin, request)
      reply.hijack()
      await child.forwardUpgrade(req, req.socket, head, forwarded(plugin, facts), facts.site)
      return
    }
    const { facts, instance } = await admit(plugin, request)
    if (!instance.server.takesUpgrades) {
      throw new ERR_ROUTE_NOT_FOUND(`websocket ${request.url.slice(0, 200)}: ${plugin.name} takes no websockets`)
    }
    reply.hijack()
    serveUpgrade({ legacy, plugin, instance, facts, log: logOf(request) }, req, req.socket, head)
  }

  async function handle(plugin: LegacyPlugin, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    // The body's length must be known up front: Node ends the body at Content-Length, so the
    // cap holds without reading it here (a counting listener would start the stream flowing
    // before the plugin's parser is attached, and lose what it counted). Browsers' uploads
    // (fetch, forms) always send one.
    const length = Number(request.headers['content-length'] ?? 0)
    const child = legacy.child
    const decided = child ? { facts: await decide(plugin, request), instance: null } : await admit(plugin, request)
    if (request.headers['transfer-encoding'] !== undefined && request.headers['content-length'] === undefined) {
      throw new ERR_LENGTH_REQUIRED('legacy plugins take bodies of a declared length')
    }
    if (length > config.uploadLimit) throw new ERR_PAYLOAD_TOO_LARGE(config.uploadLimit)
    const { facts, instance } = decided
    if (child || !instance) {
      // The body streams on to the child; the child makes the site's folders and runs the plugin.
      reply.hijack()
      await child?.forward(request.raw, reply.raw, forwarded(plugin, facts), facts.site, opts.handlerTimeoutMs)
      return
    }
    const site = request.site
    if (WRITE_METHODS.some((m) => m === request.method)) await folders.prepare(plugin.name, site.name, site.root)
    reply.hijack()
    await serveHttp({ legacy, plugin, instance, facts, log: logOf(request) }, request.raw, reply.raw, {
      handlerTimeoutMs: opts.handlerTimeoutMs, uploadLimit: config.uploadLimit,
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
