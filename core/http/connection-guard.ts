// Open HTTP connections per client address, counted where the socket is accepted (the http
// server's `connection` event), before any byte is parsed: one address cannot hold the
// farm's file descriptors however slowly it sends. A connection over the cap gets a coded 429
// written straight to the socket, which is closed at once; refusals are counted.
import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import { ERR_TOO_MANY_CONNECTIONS } from '../errors.js'

export interface ConnectionGuard {
  /** Open connections by client address. */
  readonly open: ReadonlyMap<string, number>
  /** Connections refused since the farm started. */
  readonly refused: number
}

/** '::ffff:127.0.0.1' and '127.0.0.1' are one address. */
function clientAddress(socket: Socket): string {
  const address = socket.remoteAddress ?? ''
  return address.startsWith('::ffff:') ? address.slice(7) : address
}

function refusal(perIp: number, address: string): string {
  const error = new ERR_TOO_MANY_CONNECTIONS(`${perIp} open connections from ${address}`)
  const body = JSON.stringify({ error: error.message, code: error.code })
  return 'HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json; charset=utf-8\r\nRetry-After: 10\r\n' +
    `Connection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

/** Caps `server`'s open connections per client address at `perIp` (0: no cap). */
export function guardConnections(server: Server, perIp: number): ConnectionGuard {
  const open = new Map<string, number>()
  const guard = { open, refused: 0 }
  server.on('connection', (socket: Socket) => {
    const address = clientAddress(socket)
    const count = open.get(address) ?? 0
    if (perIp > 0 && count >= perIp) {
      guard.refused++
      // The reply fits the socket's send buffer, so it is handed to the kernel now and the
      // descriptor is released at once: a refused connection holds nothing.
      socket.on('error', () => {})
      socket.write(refusal(perIp, address))
      socket.destroy()
      return
    }
    open.set(address, count + 1)
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1
      if (left <= 0) open.delete(address)
      else open.set(address, left)
    })
  })
  return guard
}
