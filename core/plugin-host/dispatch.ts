// Each plugin is an encapsulated Fastify scope under /plugin/<name>. The kernel has already
// resolved site and session (onRequest); here it checks the plugin serves this site, reads the
// client's identity, and dispatches REST requests and websocket connections to the plugin's
// current instance. Going through the instance's own router (not Fastify routes) is what lets
// a plugin that failed at boot come up later, or be relaunched, without restarting the farm.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type {} from '@fastify/websocket'
import { randomBytes } from 'node:crypto'
import {
  SUBPROTOCOL_V1, type HttpMethod, type Identity, type PluginRequest,
  type PluginLogger, type RequestContext, type RouteSchemas, type SessionInfo,
} from '../plugin-api.js'
import { isPluginHttpError, isPluginReply, isPluginUnavailable } from './contract.js'
import { findRoute, findSocket, type PluginRecord, type RouteValidators } from './registry.js'
import { pluginLogger, pluginQuery, readIdentity, sessionLabel, sessionPeeks, siteHandle } from './context.js'
import { SocketConnection, closeReason, type SocketHub } from '../sockets/socket-hub.js'
import { CLOSE } from '../sockets/close-codes.js'
import { releaseUpgradeRequest } from '../sockets/websocket-errors.js'
import type { Guards } from '../http/request-context.js'
import type { EventBus } from '../pages/events.js'
import type { SiteRegistry } from '../pages/sites.js'
import type { PushHub } from '../sockets/push-hub.js'
import {
  ERR_FORGED_FORWARD,
  ERR_PLUGIN_ELSEWHERE,
  ERR_PLUGIN_FAILED,
  ERR_PLUGIN_NOT_ENABLED,
  ERR_PLUGIN_ROUTE,
  ERR_PLUGIN_TIMEOUT,
  ERR_PLUGIN_UNAVAILABLE,
  ERR_VALIDATION,
  type WikifarmError,
} from '../errors.js'
import { deadline } from '../deadline.js'
import type { Forwarder } from '../cluster/forwarding.js'
import type { NodeRef, PlacementRoute } from '../cluster/placement.js'
import { validationMessage } from '../../schemas/validation.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** What the client claims about its page and item, for plugin routes. */
    pluginIdentity: Identity | null
    /** The session as the plugin sees it, resolved before the handler (and before an upgrade). */
    pluginSession: SessionInfo | null
    /** The node a one-node plugin's request is forwarded to, when another node runs the plugin. */
    pluginForwardTo: NodeRef | null
  }
}

export interface DispatchOptions {
  record: PluginRecord
  guards: Guards
  hub: SocketHub
  events: EventBus
  sites: SiteRegistry
  push: PushHub
  /** Key for the opaque per-plugin session labels. */
  labelKey: Buffer
  handlerTimeoutMs: number
  /** Checks the signature of requests forwarded by the farm's nodes, and forwards (core/cluster/). */
  forwarder: Forwarder
  /** Where this plugin's requests go in a farm of many nodes; absent on a single node. */
  route?: (record: PluginRecord) => PlacementRoute
}

const FORBIDDEN_HEADERS = new Set(['set-cookie', 'access-control-allow-origin', 'access-control-allow-credentials'])

function unavailable(record: PluginRecord): WikifarmError {
  const error = new ERR_PLUGIN_UNAVAILABLE(record.name)
  error.reason = record.reason ?? `the plugin is ${record.state}`
  return error
}

/** 503 naming the node that runs the plugin (or saying none does): this node does not forward to it. */
function elsewhere(record: PluginRecord, owner: NodeRef | null, why?: string): WikifarmError {
  const error = new ERR_PLUGIN_ELSEWHERE(record.name)
  error.reason = owner
    ? `node ${owner.id} (${owner.url}) runs it${why ? `, and ${why}` : '; this node does not forward to it'}`
    : `no node of the farm runs it now${record.reason ? `: ${record.reason}` : ''}`
  return error
}

/** Did the client offer wikifarm.v1? The kernel selects it whenever it is offered. */
function offersV1(request: FastifyRequest): boolean {
  const offered = request.headers['sec-websocket-protocol']
  return typeof offered === 'string' && offered.split(',').some((p) => p.trim() === SUBPROTOCOL_V1)
}

function pathOf(request: FastifyRequest): string {
  const rest = (request.params as { '*'?: string })['*'] ?? ''
  return `/${rest}`
}

function check(validator: RouteValidators['body'], value: unknown, where: string): void {
  if (validator && !validator.Check(value)) {
    throw new ERR_VALIDATION(`${where}: ${validationMessage(validator.Errors(value))}`)
  }
}

export async function pluginScope(scope: FastifyInstance, opts: DispatchOptions): Promise<void> {
  const { record, guards, hub, events, labelKey, sites, push } = opts
  scope.decorateRequest('pluginIdentity', null)
  scope.decorateRequest('pluginSession', null)
  scope.decorateRequest('pluginForwardTo', null)

  // The label and the logger are made when first read: a handler that uses neither costs no
  // HMAC, no session id (so no cookie) and no child logger.
  async function session(request: FastifyRequest): Promise<SessionInfo> {
    let label: string | undefined
    const labelOf = (id: string): string => sessionLabel(labelKey, id, request.site.name, record.name)
    const info: SessionInfo = Object.freeze({
      get id() {
        label ??= labelOf(request.session.id)
        return label
      },
      isOwner: await guards.isOwner(request),
      isAdmin: guards.isAdmin(request),
    })
    sessionPeeks.set(info, () => label ?? labelOf(request.session.peekId?.() ?? request.session.id))
    return info
  }

  // Synchronous: a websocket handler must wire its listeners before the first frame can arrive.
  function context(request: FastifyRequest): RequestContext {
    let log: PluginLogger | undefined
    return Object.freeze({
      site: siteHandle(sites, request.site.name, push, record.name),
      session: request.pluginSession as SessionInfo,
      identity: request.pluginIdentity as Identity,
      get log() {
        log ??= pluginLogger(request.log.child({ plugin: record.name, site: request.site.name }))
        return log
      },
    })
  }

  // Runs before the handler, and so before any websocket upgrade completes.
  scope.addHook('preHandler', async (request) => {
    if (record.state === 'disabled' || !record.servesSite(request.site.name)) {
      throw new ERR_PLUGIN_NOT_ENABLED(`${record.name} on ${request.site.name}`)
    }
    // Forwarded by a node of the farm: served here, never forwarded again. Claiming it falsely: refused.
    const forwarded = opts.forwarder.verify(request)
    if (forwarded === false) throw new ERR_FORGED_FORWARD()
    const placed = forwarded === null && opts.route ? opts.route(record) : { kind: 'local' as const }
    if (placed.kind === 'elsewhere') throw elsewhere(record, placed.owner)
    if (placed.kind === 'forward') {
      // The owner resolves identity and session again from the request itself.
      request.pluginForwardTo = placed.owner
      return
    }
    request.pluginIdentity = readIdentity(request.query as Record<string, unknown>, request.headers)
    if (request.ws && record.live && !findSocket(record.live, pathOf(request), offersV1(request))) {
      throw new ERR_PLUGIN_ROUTE(`websocket ${pathOf(request)} of plugin ${record.name}`)
    }
    request.pluginSession = await session(request)
  })

  async function rest(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const owner = request.pluginForwardTo
    if (owner) {
      try {
        return await opts.forwarder.rest(request, reply, owner)
      } catch (err) {
        request.log.warn({ plugin: record.name, node: owner.id, err: (err as Error).message }, 'forwarding failed')
        throw elsewhere(record, owner, `it is unreachable (${(err as Error).message})`)
      }
    }
    const live = record.live
    if (record.state !== 'running' || !live) throw unavailable(record)
    const path = pathOf(request)
    const found = findRoute(live, request.method, path)
    if (!found) throw new ERR_PLUGIN_ROUTE(`${request.method} ${path} of plugin ${record.name}`)
    const { route, validators } = found.store
    const query = pluginQuery(request.query as Record<string, unknown>)
    check(validators.params, found.params, 'params')
    check(validators.querystring, query, 'querystring')
    check(validators.body, request.body, 'body')
    let headers: Readonly<Record<string, string>> | undefined
    const pluginRequest: PluginRequest<RouteSchemas> = Object.freeze({
      method: request.method as HttpMethod,
      path,
      params: found.params as Record<string, string>,
      query: query as Record<string, string>,
      body: request.body,
      get headers() {
        headers ??= Object.freeze(Object.fromEntries(Object.entries(request.headers)
          .filter(([name]) => name !== 'cookie' && name !== 'authorization')
          .map(([name, value]) => [name, Array.isArray(value) ? value.join(', ') : String(value ?? '')])))
        return headers
      },
    })
    let result: unknown
    try {
      const ctx = context(request)
      const handling = Promise.resolve().then(() => route.handler(pluginRequest, ctx))
      result = await deadline(handling, opts.handlerTimeoutMs, () => {
        throw new ERR_PLUGIN_TIMEOUT(record.name)
      })
    } catch (err) {
      // A plugin's own client error keeps its status; any other status is a plugin failure.
      if (isPluginHttpError(err) && err.statusCode >= 400 && err.statusCode <= 499) {
        return reply.code(err.statusCode).send({ error: err.message, code: err.code })
      }
      if (isPluginUnavailable(err)) {
        const error = new ERR_PLUGIN_UNAVAILABLE(record.name)
        error.reason = err.reason
        throw error
      }
      if ((err as WikifarmError).code === 'WIKIFARM_ERR_PLUGIN_TIMEOUT') throw err
      request.log.error({ err, plugin: record.name, site: request.site.name }, 'plugin handler failed')
      throw new ERR_PLUGIN_FAILED(record.name)
    }
    if (isPluginReply(result)) {
      for (const [name, value] of Object.entries(result.headers)) {
        if (!FORBIDDEN_HEADERS.has(name.toLowerCase())) reply.header(name, value)
      }
      const body = result.body
      reply.code(result.status)
      if (typeof body === 'string' || body instanceof Uint8Array) return reply.send(body)
      return reply.type('application/json; charset=utf-8').send(JSON.stringify(body))
    }
    if (validators.response && !validators.response.Check(result)) {
      request.log.error(
        { plugin: record.name, site: request.site.name, route: route.url },
        'plugin reply does not match its response schema',
      )
      throw new ERR_PLUGIN_FAILED(record.name)
    }
    return reply.type('application/json; charset=utf-8').send(JSON.stringify(result ?? null))
  }

  function websocket(ws: WebSocket, request: FastifyRequest): void {
    if (request.pluginForwardTo) {
      opts.forwarder.socket(ws, request, request.pluginForwardTo)
      return
    }
    // An open plugin socket keeps none of its upgrade's HTTP objects (a few KiB each).
    releaseUpgradeRequest(ws, request)
    const live = record.live
    if (record.state !== 'running' || !live) {
      ws.close(CLOSE.TRY_AGAIN_LATER, closeReason(`${record.name} unavailable: ${record.reason ?? record.state}`))
      return
    }
    const found = findSocket(live, pathOf(request), ws.protocol === SUBPROTOCOL_V1)
    if (!found) {
      ws.close(CLOSE.POLICY, 'no such websocket route')
      return
    }
    const { socket: declaration, validator } = found.store
    const ctx = context(request)
    const conn = new SocketConnection(ws, {
      id: randomBytes(8).toString('hex'),
      plugin: record.name,
      site: ctx.site,
      session: ctx.session,
      identity: ctx.identity,
      log: ctx.log,
      codec: declaration.codec,
      validator,
    }, hub.limits)
    hub.add(conn)
    const site = request.site.name
    // Wired with no await since the upgrade: frames are queued from the first one, and
    // handled in order after onConnect has finished.
    conn.attach({
      onOpen: async () => {
        try {
          await declaration.onConnect?.(conn as never)
        } catch (err) {
          ctx.log.error('connect handler failed', { err: String(err) })
          conn.close(isPluginUnavailable(err) ? CLOSE.TRY_AGAIN_LATER : CLOSE.INTERNAL,
            isPluginUnavailable(err) ? err.reason : 'the plugin failed to accept the connection')
        }
      },
      onMessage: (message) => declaration.onMessage?.(conn as never, message as never),
      // The kernel's books are kept at once, even when a plugin handler never returns.
      onDisconnect: (code) => {
        hub.remove(conn)
        events.emit('connection.closed', { site, plugin: record.name, connectionId: conn.id, code })
      },
      onClose: (code, reason) => declaration.onClose?.(conn as never, code, reason),
    })
    events.emit('connection.opened', { site, plugin: record.name, connectionId: conn.id })
  }

  const restMethods = ['POST', 'PUT', 'PATCH', 'DELETE'] as const
  for (const url of ['/', '/*']) {
    scope.route({ method: 'GET', url, handler: rest, wsHandler: websocket })
    scope.route({ method: [...restMethods], url, handler: rest })
  }
}
