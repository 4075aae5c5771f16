// A websocket upgrade to a route that has no websocket handler is refused with 404 before the
// upgrade. Without this, @fastify/websocket completes the handshake (101) on any GET route and
// then closes the socket: an undocumented answer, and a handshake's work for nothing.
import type { FastifyInstance } from 'fastify'
import { ERR_ROUTE_NOT_FOUND } from '../errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set by the kernel on routes that accept websocket upgrades. */
    websocket?: boolean
  }
}

/** Marks websocket routes as they are added, and refuses upgrades to the others. Call before routes are registered. */
export function registerUpgradeGuard(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    if (route.websocket === true || typeof route.wsHandler === 'function')
      route.config = { ...route.config, websocket: true }
  })
  app.addHook('onRequest', async (request) => {
    if ((request.headers.upgrade ?? '').toLowerCase() !== 'websocket') return
    if (request.routeOptions.config?.websocket === true) return
    // Unmatched URLs reach the not-found handler, which answers 404 already.
    if (request.routeOptions.url === undefined) return
    throw new ERR_ROUTE_NOT_FOUND(`websocket ${request.url.slice(0, 200)}: this route is not a websocket`)
  })
}
