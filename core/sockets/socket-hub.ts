// The kernel's websocket conventions (docs/protocol.md): subprotocol negotiation, the JSON
// envelope, frame limits, heartbeats that drop dead peers, a send-buffer cap per connection
// so a slow reader cannot grow memory, and documented close codes. Plugins get a Connection;
// only this file touches `ws`.
import type { WebSocket, RawData } from 'ws'
import secureJson from 'secure-json-parse'
import type { Compile } from 'typebox/compile'
import {
  SUBPROTOCOL_V1,
  type Connection,
  type Envelope,
  type Identity,
  type PluginLogger,
  type SessionInfo,
  type SiteHandle,
} from '../plugin-api.js'
import { deadline } from '../deadline.js'
import { validationMessage } from '../../schemas/validation.js'
import { CLOSE, assertSendableCloseCode } from './close-codes.js'
import { HANDLER_FAILED, errorMessage } from './error-message.js'

export interface SocketLimits {
  /** Largest incoming frame, bytes (ws closes with 1009 beyond it). */
  maxPayload: number
  /** Bytes queued for one client beyond which it is dropped with 1013. */
  sendBufferBytes: number
  /** Heartbeat period; a peer that misses one pong is terminated. */
  pingIntervalMs: number
  /** Consecutive invalid frames tolerated on a json route before closing with 1008. */
  maxInvalidFrames: number
}

export const DEFAULT_SOCKET_LIMITS: SocketLimits = {
  maxPayload: 1024 * 1024,
  sendBufferBytes: 4 * 1024 * 1024,
  pingIntervalMs: 30_000,
  maxInvalidFrames: 10,
}

/** The ws server's handleProtocols: pick wikifarm.v1 when offered, else none (plain client). */
export function negotiateProtocol(offered: Set<string>): string | false {
  return offered.has(SUBPROTOCOL_V1) ? SUBPROTOCOL_V1 : false
}

export interface ConnectionInit {
  id: string
  plugin: string
  site: SiteHandle
  session: SessionInfo
  identity: Identity
  log: PluginLogger
  codec: 'text' | 'json'
  validator: ReturnType<typeof Compile> | null
}

export interface ConnectionHooks {
  /** Runs first; frames that arrive meanwhile wait for it. */
  onOpen(): void | Promise<void>
  /** Runs the moment the socket closes, even while a handler is still busy. */
  onDisconnect(code: number): void
  onMessage(message: unknown): void | Promise<void>
  onClose(code: number, reason: string): void | Promise<void>
}

/** Limits reason strings to the 123 bytes a close frame allows. */
export function closeReason(reason: string): string {
  let text = reason
  while (Buffer.byteLength(text) > 123) text = text.slice(0, -1)
  return text
}

/** A settled promise: the start of every connection's handler queue, and an ended one's `finished`. */
const IDLE: Promise<void> = Promise.resolve()

export class SocketConnection implements Connection<unknown> {
  readonly id: string
  readonly plugin: string
  readonly site: SiteHandle
  readonly session: SessionInfo
  readonly identity: Identity
  readonly log: PluginLogger
  readonly protocol: typeof SUBPROTOCOL_V1 | null
  readonly codec: 'text' | 'json'
  /** Messages not sent because the client was not reading. */
  dropped = 0
  alive = true
  /** True once the socket itself has closed (its close handler may still be running). */
  disconnected = false
  readonly #ws: WebSocket
  readonly #limits: SocketLimits
  readonly #validator: ReturnType<typeof Compile> | null
  #invalidFrames = 0
  // Per-connection state is made on first need: an idle connection holds only its fields
  // (docs/benchmarks.md, idle websockets).
  #queue: Promise<void> = IDLE
  #closed = false
  #ended = false
  #finished: Promise<void> | null = null
  #finish: (() => void) | null = null

  constructor(ws: WebSocket, init: ConnectionInit, limits: SocketLimits) {
    this.#ws = ws
    this.#limits = limits
    this.id = init.id
    this.plugin = init.plugin
    this.site = init.site
    this.session = init.session
    this.identity = init.identity
    this.log = init.log
    this.codec = init.codec
    this.#validator = init.validator
    this.protocol = ws.protocol === SUBPROTOCOL_V1 ? SUBPROTOCOL_V1 : null
  }

  /** Resolves once the socket has closed and the plugin's close handler has run. */
  get finished(): Promise<void> {
    this.#finished ??= this.#ended ? IDLE : new Promise((resolve) => { this.#finish = resolve })
    return this.#finished
  }

  get closed(): boolean {
    return this.#closed || this.#ws.readyState !== this.#ws.OPEN
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount
  }

  send(message: unknown): boolean {
    if (this.closed) return false
    return this.sendFrame(this.codec === 'json' ? JSON.stringify(message) : String(message))
  }

  /**
   * Sends a text frame already serialised: a publish to many connections is serialised (and
   * encoded, as a Buffer) once. The frame is not checked against the codec.
   */
  sendFrame(frame: string | Buffer): boolean {
    if (this.closed) return false
    if (this.#ws.bufferedAmount + Buffer.byteLength(frame) > this.#limits.sendBufferBytes) {
      this.dropped++
      this.close(CLOSE.TRY_AGAIN_LATER, 'send buffer full: the client is not reading')
      return false
    }
    if (typeof frame === 'string') this.#ws.send(frame)
    else this.#ws.send(frame, { binary: false })
    return true
  }

  close(code: number = CLOSE.NORMAL, reason = ''): void {
    // Checked before any state changes: ws throws on codes a peer may not receive, and a
    // connection marked closed but left open would never be dropped by the heartbeat.
    assertSendableCloseCode(code)
    if (this.#closed) return
    this.#closed = true
    if (this.#ws.readyState === this.#ws.OPEN || this.#ws.readyState === this.#ws.CONNECTING) {
      this.#ws.close(code, closeReason(reason))
      // A peer that never answers the close handshake is cut off.
      setTimeout(() => this.#ws.terminate(), 5000).unref()
    }
  }

  terminate(): void {
    this.#closed = true
    this.#ws.terminate()
  }

  ping(): void {
    this.alive = false
    this.#ws.ping()
  }

  /** Wires ws events to the plugin's handlers, one message at a time, in order. */
  attach(hooks: ConnectionHooks): void {
    this.#queue = this.#queue.then(() => hooks.onOpen()).catch((err: unknown) => {
      this.log.error('connect handler failed', { err: String(err) })
    })
    this.#ws.on('pong', () => { this.alive = true })
    this.#ws.on('message', (data: RawData, isBinary: boolean) => {
      // Decoding waits its turn too, so a bad frame closes only after the frames before it are handled.
      let id: string | undefined
      this.#queue = this.#queue.then(() => {
        if (this.#closed) return undefined
        const message = this.#decode(data, isBinary)
        if (message === undefined) return undefined
        id = this.codec === 'json' ? (message as Envelope).id : undefined
        return hooks.onMessage(message)
      }).catch((err: unknown) => {
        this.log.error('message handler failed', { err: String(err) })
        this.#sendError(id, HANDLER_FAILED.code, HANDLER_FAILED.error)
      })
    })
    this.#ws.on('close', (code: number, reason: Buffer) => {
      this.#closed = true
      this.disconnected = true
      try {
        hooks.onDisconnect(code)
      } catch (err) {
        this.log.error('disconnect hook failed', { err: String(err) })
      }
      this.#queue = this.#queue.then(() => hooks.onClose(code, reason.toString('utf8'))).catch((err: unknown) => {
        this.log.error('close handler failed', { err: String(err) })
      }).then(() => {
        this.#ended = true
        this.#finish?.()
      })
    })
  }

  #decode(data: RawData, isBinary: boolean): unknown {
    if (isBinary) {
      this.close(CLOSE.UNSUPPORTED_DATA, 'binary frames are not accepted')
      return undefined
    }
    const text = Array.isArray(data)
      ? Buffer.concat(data).toString('utf8')
      : Buffer.from(data as ArrayBuffer).toString('utf8')
    if (this.codec === 'text') return text
    let value: unknown
    try {
      value = secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' })
    } catch {
      this.close(CLOSE.INVALID_PAYLOAD, 'frame is not valid JSON')
      return undefined
    }
    const rawId = value && typeof value === 'object' ? (value as Envelope).id : undefined
    const id = typeof rawId === 'string' && rawId.length <= 200 ? rawId : undefined
    const envelopeOk = value !== null && typeof value === 'object' && !Array.isArray(value) &&
      typeof (value as Envelope).type === 'string' && (rawId === undefined || id !== undefined)
    if (!envelopeOk || (this.#validator && !this.#validator.Check(value))) {
      const detail = !envelopeOk
        ? 'expected an envelope {type, id?, data?}'
        : this.#validator
          ? validationMessage(this.#validator.Errors(value), 3)
          : ''
      this.#invalidFrames++
      if (this.#invalidFrames >= this.#limits.maxInvalidFrames) {
        this.close(CLOSE.POLICY, 'too many invalid messages')
      } else {
        this.#sendError(id, 'WIKIFARM_ERR_BAD_MESSAGE', `invalid message: ${detail}`)
      }
      return undefined
    }
    this.#invalidFrames = 0
    return value
  }

  #sendError(id: string | undefined, code: string, error: string): void {
    this.send(errorMessage(this.codec, id, code, error))
  }

}

/** True when `promise` settles within `ms`. */
function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return deadline(promise.then(() => true), ms, () => false)
}

/** Every open connection of the kernel, with the heartbeat that finds dead peers. */
export class SocketHub {
  readonly limits: SocketLimits
  readonly #connections = new Set<SocketConnection>()
  #timer: NodeJS.Timeout | null = null

  constructor(limits: SocketLimits) {
    this.limits = limits
  }

  add(conn: SocketConnection): void {
    this.#connections.add(conn)
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#heartbeat(), this.limits.pingIntervalMs)
      this.#timer.unref()
    }
  }

  remove(conn: SocketConnection): void {
    this.#connections.delete(conn)
    if (this.#connections.size === 0 && this.#timer) {
      clearInterval(this.#timer)
      this.#timer = null
    }
  }

  get size(): number {
    return this.#connections.size
  }

  connections(): SocketConnection[] {
    return [...this.#connections]
  }

  /** Does any open connection belong to this site? */
  servesSite(site: string): boolean {
    for (const conn of this.#connections) if (conn.site.name === site) return true
    return false
  }

  /** Counts of open connections by plugin and site, for the operator view. */
  counts(): Record<string, Record<string, number>> {
    const counts: Record<string, Record<string, number>> = {}
    for (const conn of this.#connections) {
      const bySite = counts[conn.plugin] ??= {}
      bySite[conn.site.name] = (bySite[conn.site.name] ?? 0) + 1
    }
    return counts
  }

  #heartbeat(): void {
    for (const conn of this.#connections) {
      if (!conn.alive) {
        conn.log.info('terminating a peer that missed its heartbeat')
        conn.terminate()
        continue
      }
      conn.ping()
    }
  }

  /**
   * Closes every connection (of one plugin, or all) with `code`, and resolves once each has
   * closed and its plugin's close handler has run, so a plugin is never closed under its
   * own open connections. A peer that has not finished the close handshake within `graceMs`
   * is cut off, and its close handler gets another `graceMs`; close handlers still running
   * then are not waited for.
   */
  async closeAll(code: number, reason: string, plugin?: string, graceMs = 1000): Promise<void> {
    const closing = [...this.#connections].filter((conn) => plugin === undefined || conn.plugin === plugin)
    if (closing.length === 0) return
    for (const conn of closing) conn.close(code, reason)
    if (await within(Promise.all(closing.map((conn) => conn.finished)), graceMs)) return
    const deaf = closing.filter((conn) => !conn.disconnected)
    for (const conn of deaf) conn.terminate()
    await within(Promise.all(deaf.map((conn) => conn.finished)), graceMs)
  }
}
