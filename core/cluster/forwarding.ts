// Forwarding a one-node plugin's traffic from the node a client reached to the node that runs
// the plugin. The request goes on as the client sent it: same method, path, query, Host,
// Cookie, Origin, and body, so the owner resolves site and session itself from what the
// client proved, exactly as if the client had come straight to it (all nodes share the cookie
// secret and the store). Nothing the forwarding node concluded is believed by the owner.
//
// One header is added: x-wikifarm-forwarded, signed with a key derived from the cookie secret
// over the node, the time, the method, the Host and the URL. It says "a node of this farm has
// already routed this request": the owner serves it itself and never forwards it again (no
// loops between two nodes that disagree for a moment about who owns a plugin). A request that
// carries the header unsigned, signed by another key, or signed over another request is a
// visitor's forgery and is refused (403 WIKIFARM_ERR_FORGED_FORWARD).
import { createHmac, timingSafeEqual } from 'node:crypto'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { FastifyReply, FastifyRequest } from 'fastify'
import WebSocket, { type RawData } from 'ws'
import type { NodeRef } from './placement.js'
import { CLOSE, isSendableCloseCode } from '../sockets/close-codes.js'

export const FORWARDED_HEADER = 'x-wikifarm-forwarded'
/** How old a signature may be: the nodes' clocks may differ a little; a replay later is refused. */
const MAX_SKEW_MS = 60_000
/** Headers that describe one hop, never passed on (RFC 9110 §7.6.1), and the body's length, recomputed. */
const HOP_HEADERS = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authorization', 'proxy-authenticate', 'content-length', FORWARDED_HEADER,
])
/** What the relay passes on to the owner of a websocket: what the owner checks, the rest is the relay's. */
const WS_HEADERS = ['cookie', 'origin', 'user-agent', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']

export interface ForwardingOptions {
  /** The farm's cookie secret: every node has it, no visitor does. */
  secret: string
  /** This node. */
  node: () => NodeRef | null
  /** Largest websocket frame (the kernel's maxPayload) and client send buffer. */
  maxPayload: number
  sendBufferBytes: number
  /** How long the owner may take to answer (the plugin handler timeout, and a margin). */
  timeoutMs: number
}

function first(value: string | string[] | undefined): string {
  return Array.isArray(value) ? (value[0] ?? '') : (value ?? '')
}

export class Forwarder {
  readonly #options: ForwardingOptions
  readonly #key: Buffer

  constructor(options: ForwardingOptions) {
    this.#options = options
    // A key of its own, so a signature is never also a valid cookie signature.
    this.#key = createHmac('sha256', options.secret).update('wikifarm node forwarding v1').digest()
  }

  #sign(nodeId: string, at: number, method: string, host: string, url: string): string {
    const signed = [nodeId, String(at), method, host, url].join('\n')
    return createHmac('sha256', this.#key).update(signed).digest('base64url')
  }

  /** The header value a node adds to what it forwards. */
  header(method: string, host: string, url: string): string {
    const node = this.#options.node()?.id ?? 'unknown'
    const at = Date.now()
    return `${encodeURIComponent(node)};${at};${this.#sign(node, at, method, host, url)}`
  }

  /**
   * Was this request forwarded by a node of this farm? null: it does not say so; true: it was;
   * false: it says so falsely (a forgery, a replay past a minute, or another request's signature).
   */
  verify(request: FastifyRequest): boolean | null {
    const raw = request.headers[FORWARDED_HEADER]
    if (raw === undefined) return null
    const value = first(raw)
    const [node, at, signature] = value.split(';')
    if (!node || !at || !signature || !/^\d{1,15}$/.test(at)) return false
    if (Math.abs(Date.now() - Number(at)) > MAX_SKEW_MS) return false
    let nodeId: string
    try {
      nodeId = decodeURIComponent(node)
    } catch {
      return false
    }
    const host = first(request.headers.host)
    const expected = Buffer.from(this.#sign(nodeId, Number(at), request.method, host, request.url))
    const given = Buffer.from(signature)
    return given.length === expected.length && timingSafeEqual(given, expected)
  }

  /** The request's headers as they go on to the owner: the client's, less one hop's, plus the signature. */
  #headers(request: FastifyRequest, body: Buffer | null): Record<string, string | string[]> {
    const headers: Record<string, string | string[]> = {}
    for (const [name, value] of Object.entries(request.headers)) {
      if (value !== undefined && !HOP_HEADERS.has(name)) headers[name] = value
    }
    if (body) headers['content-length'] = String(body.length)
    headers[FORWARDED_HEADER] = this.header(request.method, first(request.headers.host), request.url)
    return headers
  }

  /**
   * The body as the client sent it, from what Fastify parsed: JSON again as JSON, a form again
   * as a form, text and bytes as they are. (The kernel parses before any route runs; a plugin
   * route receives the parsed body on either node, so meaning, not bytes, is what must cross.)
   */
  static body(request: FastifyRequest): Buffer | null {
    const body: unknown = request.body
    if (body === undefined || body === null) return null
    if (Buffer.isBuffer(body)) return body
    if (typeof body === 'string') return Buffer.from(body)
    const type = first(request.headers['content-type']).toLowerCase()
    if (type.startsWith('application/x-www-form-urlencoded')) {
      return Buffer.from(new URLSearchParams(body as Record<string, string>).toString())
    }
    return Buffer.from(JSON.stringify(body))
  }

  /** Sends the request to `owner` and its answer back to the client; rejects when the owner is unreachable. */
  rest(request: FastifyRequest, reply: FastifyReply, owner: NodeRef): Promise<FastifyReply> {
    const body = Forwarder.body(request)
    const target = new URL(request.url, owner.url)
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest
    return new Promise((resolve, reject) => {
      const outgoing = send(target, {
        method: request.method,
        headers: this.#headers(request, body),
        timeout: this.#options.timeoutMs,
      }, (answer: IncomingMessage) => {
        reply.code(answer.statusCode ?? 502)
        for (const [name, value] of Object.entries(answer.headers)) {
          if (value !== undefined && !HOP_HEADERS.has(name)) reply.header(name, value)
        }
        resolve(reply.send(answer))
      })
      outgoing.on('timeout', () => outgoing.destroy(new Error(`node ${owner.id} did not answer in time`)))
      outgoing.on('error', reject)
      outgoing.end(body ?? undefined)
    })
  }

  /**
   * Relays a websocket the client opened here to the owner: frames both ways in order, the
   * close code and reason back. When the owner goes away the client is closed with 1012
   * (restart): it reconnects, and its next connection reaches the new owner.
   */
  socket(client: WebSocket, request: FastifyRequest, owner: NodeRef): void {
    const target = new URL(request.url, owner.url)
    target.protocol = target.protocol === 'https:' ? 'wss:' : 'ws:'
    const headers: Record<string, string> = {
      host: first(request.headers.host),
      [FORWARDED_HEADER]: this.header('GET', first(request.headers.host), request.url),
    }
    for (const name of WS_HEADERS) {
      const value = request.headers[name]
      if (value !== undefined) headers[name] = first(value)
    }
    const upstream = new WebSocket(target, client.protocol ? [client.protocol] : [], {
      headers,
      maxPayload: this.#options.maxPayload,
      handshakeTimeout: 5000,
      perMessageDeflate: false,
    })
    const waiting: { data: RawData; binary: boolean }[] = []
    let waitingBytes = 0
    const closeClient = (code: number, reason: string): void => {
      if (client.readyState === WebSocket.OPEN) client.close(isSendableCloseCode(code) ? code : CLOSE.RESTART, reason)
    }
    client.on('message', (data, binary) => {
      if (upstream.readyState === WebSocket.OPEN) {
        upstream.send(data, { binary })
        return
      }
      waiting.push({ data, binary })
      waitingBytes += Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer).length
      if (waitingBytes > this.#options.sendBufferBytes) closeClient(CLOSE.TRY_AGAIN_LATER, 'too much sent too early')
    })
    upstream.on('open', () => {
      for (const { data, binary } of waiting.splice(0)) upstream.send(data, { binary })
    })
    upstream.on('message', (data, binary) => {
      if (client.readyState !== WebSocket.OPEN) return
      // A client that does not read is dropped, as the owner would drop it (docs/protocol.md).
      if (client.bufferedAmount > this.#options.sendBufferBytes) {
        closeClient(CLOSE.TRY_AGAIN_LATER, 'not reading fast enough')
        upstream.terminate()
        return
      }
      client.send(data, { binary })
    })
    upstream.on('close', (code, reason) => {
      // 1005/1006 (no code, connection lost) cannot be sent: the owner went away, come back.
      closeClient(isSendableCloseCode(code) ? code : CLOSE.RESTART,
        isSendableCloseCode(code) ? reason.toString() : `node ${owner.id} went away`)
    })
    upstream.on('unexpected-response', (_req, res) => {
      closeClient(CLOSE.TRY_AGAIN_LATER, `node ${owner.id} answered ${res.statusCode ?? 0}`)
      upstream.terminate()
    })
    upstream.on('error', () => closeClient(CLOSE.TRY_AGAIN_LATER, `node ${owner.id} is unreachable`))
    client.on('close', (code, reason) => {
      if (upstream.readyState === WebSocket.OPEN) {
        upstream.close(isSendableCloseCode(code) ? code : CLOSE.NORMAL, reason.toString())
      } else upstream.terminate()
    })
    client.on('error', () => upstream.terminate())
  }
}
