// What happens when a websocket errs: a client's frame too big (1009), not UTF-8 (1007), or
// breaking the protocol (1002), or a handler that threw. @fastify/websocket's default handler
// terminates the socket at once; but for a client's bad frame ws has already queued the close
// frame with the right code, and terminating destroys it unsent whenever the socket still has
// data queued, so the client saw 1006 instead of the documented 1009 (found by
// test/fuzz-websockets.test.ts, on the Txtzyme socket while outputs were being sent). Here the
// close handshake is left to finish, and a peer that does not finish it is cut off after 5 s,
// as everywhere else (docs/protocol.md, close codes).
import type { FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { Socket } from 'node:net'
import type { ServerResponse } from 'node:http'
import { CLOSE } from './close-codes.js'

/** Milliseconds a peer has to answer a close frame; the same as SocketConnection.close. */
export const CLOSE_HANDSHAKE_MS = 5000

/** What the handler reads of the upgrade request. */
type ErringRequest = Pick<FastifyRequest, 'log' | 'site'>

export function websocketErrorHandler(error: Error, socket: WebSocket, request: ErringRequest): void {
  // A client's bad frame is the client's problem: logged, not an error of the farm.
  request.log.info({ err: error, site: request.site?.name }, 'websocket closed on an error')
  // A handler that threw leaves the socket open: close it as an internal error.
  if (socket.readyState === socket.OPEN) socket.close(CLOSE.INTERNAL, 'internal error')
  setTimeout(() => socket.terminate(), CLOSE_HANDSHAKE_MS).unref()
}

/**
 * Lets go of the upgrade's HTTP request once the websocket is open. Two things keep it (the
 * raw request with its headers, a ServerResponse, Fastify's request and reply: some KiB) alive
 * as long as the socket: @fastify/websocket's error listener, which closes over request and
 * reply, and the ServerResponse it assigned to the TCP socket, which the socket still names
 * as its current HTTP message. Called first thing in a websocket handler: the listener is
 * swapped for one holding only what the error handler reads, and the response is detached
 * from the socket as Node's own server does when a response ends.
 */
export function releaseUpgradeRequest(socket: WebSocket, request: FastifyRequest): void {
  const erring: ErringRequest = { log: request.log, site: request.site }
  socket.removeAllListeners('error')
  socket.on('error', (error: Error) => { websocketErrorHandler(error, socket, erring) })
  const tcp = request.raw.socket as Socket & { _httpMessage?: ServerResponse | null }
  tcp._httpMessage?.detachSocket(tcp)
}
