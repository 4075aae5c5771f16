// Handing one admitted request (or websocket upgrade) to a legacy plugin's Express app (or its
// params.server), fenced: what the farm's thread does with `--legacyIsolation none`, and what the
// legacy child does with every request the farm forwards to it (child-main.ts). The checks
// before (site, session, Origin, rate limits, refusals, body length) are the caller's.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { sendCoded } from './coded.js'
import type { Duplex } from 'node:stream'
import {
  ERR_PAYLOAD_TOO_LARGE, ERR_PLUGIN_FAILED, ERR_PLUGIN_ROUTE, ERR_PLUGIN_TIMEOUT, ERR_PLUGIN_UNAVAILABLE,
} from '../../errors.js'
import type { LegacyInstance, LegacyPlugin, LegacyPlugins } from './host.js'
import { legacyScope, type LegacyRequestFacts } from './scope.js'
import { LegacyExitRefused } from './exit-guard.js'
import { fenced } from './fault-guard.js'

/** Where a plugin's failures are logged: the request's logger, or the child's link to the farm's. */
export type ServeLog = (message: string, data: Record<string, unknown>) => void

export interface Served {
  legacy: LegacyPlugins
  plugin: LegacyPlugin
  instance: LegacyInstance
  facts: LegacyRequestFacts
  log: ServeLog
}

/** Runs the plugin's Express app on the request; resolves when the response ends or times out. */
export function serveHttp(served: Served, req: IncomingMessage, res: ServerResponse, opts: {
  handlerTimeoutMs: number
  uploadLimit: number
}): Promise<void> {
  const { legacy, plugin, instance, facts, log } = served
  const app = instance.app
  const site = facts.site.name
  return new Promise<void>((resolve) => {
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
        if (status === 413) sendCoded(res, new ERR_PAYLOAD_TOO_LARGE(opts.uploadLimit))
        else if (typeof status === 'number' && status >= 400 && status < 500) {
          const message = String((err as Error).message).slice(0, 200)
          sendCoded(res, { message, code: 'WIKIFARM_ERR_BAD_REQUEST', statusCode: status })
        } else {
          log('legacy plugin handler failed', { err, plugin: plugin.name, site })
          sendCoded(res, new ERR_PLUGIN_FAILED(plugin.name))
        }
      } else {
        sendCoded(res, new ERR_PLUGIN_ROUTE(`${req.method ?? ''} ${req.url?.split('?')[0]?.slice(0, 200) ?? ''}`))
      }
    }
    // An exception from any callback the handler starts answers this request with 500 and
    // is counted against the plugin; the farm and the plugin's other requests carry on.
    const onFault = (err: unknown): void => {
      if (err instanceof LegacyExitRefused) return done(err)
      legacy.fault(plugin.name, err)
      log('legacy plugin threw', { err, plugin: plugin.name, site })
      sendCoded(res, new ERR_PLUGIN_FAILED(plugin.name))
    }
    legacy.serve(plugin, req, facts, () => fenced(onFault, [req, res], () => {
      // Express turns Node's request and response into its own (it sets their prototypes).
      app(req as Parameters<typeof app>[0], res as Parameters<typeof app>[1], done)
    }))
  })
}

/**
 * Emits the upgrade on the instance's params.server, where the plugin's own ws server completes
 * the handshake. The socket's events (and so the plugin's 'message' listeners) run as this
 * request: the site's argv, the exit guard and the fence follow them.
 */
export function serveUpgrade(served: Served, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const { legacy, plugin, instance, facts, log } = served
  instance.sockets.add(socket)
  socket.once('close', () => instance.sockets.delete(socket))
  const emit = socket.emit.bind(socket)
  const onFault = (err: unknown): void => {
    // A refused process.exit has already stopped the plugin (or the site's instance).
    if (!(err instanceof LegacyExitRefused)) {
      legacy.fault(plugin.name, err)
      log('legacy plugin threw on a websocket', { err, plugin: plugin.name, site: facts.site.name })
    }
    socket.destroy()
  }
  legacy.serve(plugin, req, facts, () => fenced(onFault, [socket], () => {
    const scope = legacyScope.getStore()
    socket.emit = ((event: string | symbol, ...args: unknown[]) =>
      scope ? legacyScope.run(scope, () => emit(event, ...args)) : emit(event, ...args)) as typeof socket.emit
    instance.server.emit('upgrade', req, socket, head)
  }))
}

/**
 * The instance that serves this request's site, or the coded 503 saying why there is none:
 * the plugin failed, or (per-site mode) the site's own instance did.
 */
export async function runningInstance(
  legacy: LegacyPlugins, plugin: LegacyPlugin, facts: LegacyRequestFacts,
): Promise<LegacyInstance> {
  const unavailable = (reason: string | null): Error =>
    Object.assign(new ERR_PLUGIN_UNAVAILABLE(plugin.name), { reason: reason ?? plugin.state })
  if (plugin.state !== 'running') throw unavailable(plugin.reason)
  const instance = await legacy.instanceFor(plugin, facts)
  if (!instance) throw unavailable(plugin.failedSites.get(facts.site.name) ?? plugin.reason)
  return instance
}
