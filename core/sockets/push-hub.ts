// Push: the kernel's publish/subscribe for every plugin (docs/protocol.md, "Push"). Clients
// subscribe over GET /system/push to keys of their own site (`<slug>` or `<slug>/<item-id>`);
// a plugin publishes to a key through its site handle (ctx.site.publish), which is bound to
// one site. The registry is site ─▶ key ─▶ connections, with each connection's own keys kept
// beside it so a disconnect frees everything at once.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type {} from '@fastify/websocket'
import { randomBytes } from 'node:crypto'
import { Type, type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import type { Envelope, Identity, JsonValue, SessionInfo } from '../plugin-api.js'
import { LazyPluginLogger, readIdentity, sessionLabel, siteHandle } from '../plugin-host/context.js'
import { SocketConnection, type SocketHub } from './socket-hub.js'
import { releaseUpgradeRequest } from './websocket-errors.js'
import type { Guards } from '../http/request-context.js'
import type { SiteRegistry } from '../pages/sites.js'
import { ERR_VALIDATION } from '../errors.js'
import { ITEM_ID_BODY, SLUG_BODY, isItemId, isSlug } from '../../schemas/page.js'

/** The name push connections carry in the socket hub (reserved: no plugin may take it). */
export const PUSH_CONNECTION_PLUGIN = 'kernel'
export const DEFAULT_MAX_SUBSCRIPTIONS = 256

const KEY = new RegExp(`^(${SLUG_BODY})(?:\\/(${ITEM_ID_BODY}))?$`)
const MAX_KEY_LENGTH = 300

/** Why a key is not one of this site's, in words a client can act on; null when it is valid. */
export function keyProblem(key: unknown): string | null {
  if (typeof key !== 'string') return 'a key must be a string'
  if (key.length > MAX_KEY_LENGTH) return `a key is at most ${MAX_KEY_LENGTH} characters`
  if (KEY.test(key)) return null
  const parts = key.split('/')
  const [slug, item] = parts
  // A site's name (a host) has a dot; no slug does. Keys never name a site: the connection's is implied.
  if (slug !== undefined && slug.includes('.')) {
    const named = JSON.stringify(key.slice(0, 120))
    return `keys name pages of this connection's site only ("<slug>" or "<slug>/<item-id>"): ${named} names a site`
  }
  if (parts.length > 2)
    return `a key is "<slug>" or "<slug>/<item-id>": ${JSON.stringify(key.slice(0, 120))} has too many parts`
  if (!isSlug(slug))
    return `invalid page slug ${JSON.stringify((slug ?? '').slice(0, 120))} ` +
      '(lowercase letters, digits and dashes, 1 to 100)'
  if (item !== undefined && !isItemId(item))
    return `invalid item id ${JSON.stringify(item.slice(0, 40))} (16 hex digits)`
  return `invalid key ${JSON.stringify(key.slice(0, 120))}`
}

/** A subscriber as the registry sees it: the kernel's SocketConnection, or a stand-in in tests. */
export interface Subscriber {
  readonly site: { readonly name: string }
  readonly closed: boolean
  /** Sends an already serialised JSON frame; false when dropped (the client is not reading). */
  sendFrame(frame: Buffer): boolean
}

export interface PushCounts {
  /** Subscriptions over every connection (one per connection and key). */
  subscriptions: number
  /** Distinct (site, key) pairs with at least one subscriber. */
  keys: number
  /** Sites with at least one subscription. */
  sites: number
  /** Connections with at least one subscription. */
  connections: number
}

export type SubscribeResult = 'subscribed' | 'already' | 'full'

export class PushHub {
  readonly maxPerConnection: number
  /** Largest published frame, bytes; a bigger one is refused before anyone is sent anything. */
  readonly maxFrameBytes: number
  readonly #sites = new Map<string, Map<string, Set<Subscriber>>>()
  readonly #byConnection = new Map<Subscriber, Set<string>>()
  #subscriptions = 0

  constructor(options: { maxPerConnection?: number; maxFrameBytes: number }) {
    this.maxPerConnection = options.maxPerConnection ?? DEFAULT_MAX_SUBSCRIPTIONS
    this.maxFrameBytes = options.maxFrameBytes
  }

  /** Adds a subscription of `conn` (on its own site) to a valid key. */
  subscribe(conn: Subscriber, key: string): SubscribeResult {
    let mine = this.#byConnection.get(conn)
    if (mine?.has(key)) return 'already'
    if ((mine?.size ?? 0) >= this.maxPerConnection) return 'full'
    if (conn.closed) return 'subscribed' // its disconnect has run or will: keep nothing for it
    if (!mine) this.#byConnection.set(conn, mine = new Set())
    mine.add(key)
    const site = conn.site.name
    let keys = this.#sites.get(site)
    if (!keys) this.#sites.set(site, keys = new Map())
    let subscribers = keys.get(key)
    if (!subscribers) keys.set(key, subscribers = new Set())
    subscribers.add(conn)
    this.#subscriptions++
    return 'subscribed'
  }

  /** Removes one subscription; true when there was one. */
  unsubscribe(conn: Subscriber, key: string): boolean {
    const mine = this.#byConnection.get(conn)
    if (!mine?.delete(key)) return false
    if (mine.size === 0) this.#byConnection.delete(conn)
    this.#drop(conn, conn.site.name, key)
    return true
  }

  /** Removes every subscription of a connection (on disconnect). */
  removeConnection(conn: Subscriber): void {
    const mine = this.#byConnection.get(conn)
    if (!mine) return
    this.#byConnection.delete(conn)
    for (const key of mine) this.#drop(conn, conn.site.name, key)
  }

  #drop(conn: Subscriber, site: string, key: string): void {
    const keys = this.#sites.get(site)
    const subscribers = keys?.get(key)
    if (!keys || !subscribers?.delete(conn)) return
    this.#subscriptions--
    if (subscribers.size === 0) keys.delete(key)
    if (keys.size === 0) this.#sites.delete(site)
  }

  /**
   * Sends `{type:'published', data:{key, plugin?, value}}` to every subscriber of `key` on
   * `site`, serialised once; resolves to the number of subscribers it was queued for. A
   * subscriber whose send buffer is full is dropped (closed with 1013) by its connection,
   * without holding up the others.
   */
  publish(site: string, key: string, value: JsonValue, plugin?: string): number {
    const problem = keyProblem(key)
    if (problem !== null) throw new ERR_VALIDATION(`push key: ${problem}`)
    const subscribers = this.#sites.get(site)?.get(key)
    const data: { key: string; plugin?: string; value: JsonValue } = { key, value }
    if (plugin !== undefined) data.plugin = plugin
    const frame = Buffer.from(JSON.stringify({ type: 'published', data }))
    if (frame.length > this.maxFrameBytes) {
      throw new ERR_VALIDATION(`push message over ${this.maxFrameBytes} bytes`)
    }
    if (!subscribers) return 0
    let reached = 0
    // A copy: a connection closed by its buffer cap leaves the set when its socket closes.
    for (const conn of [...subscribers]) if (conn.sendFrame(frame)) reached++
    return reached
  }

  /** How many subscribers a key has on a site now. */
  subscribers(site: string, key: string): number {
    return this.#sites.get(site)?.get(key)?.size ?? 0
  }

  counts(): PushCounts {
    let keys = 0
    for (const byKey of this.#sites.values()) keys += byKey.size
    return { subscriptions: this.#subscriptions, keys, sites: this.#sites.size, connections: this.#byConnection.size }
  }
}

/** What a client may send on /system/push. The key's format is checked after, with a clear message. */
const KeyData = Type.Object({ key: Type.String({ maxLength: MAX_KEY_LENGTH }) })
export const PushMessage = Type.Union([
  Type.Object({ type: Type.Literal('subscribe'), id: Type.Optional(Type.String({ maxLength: 200 })), data: KeyData }),
  Type.Object({ type: Type.Literal('unsubscribe'), id: Type.Optional(Type.String({ maxLength: 200 })), data: KeyData }),
])
type PushMessage = Static<typeof PushMessage>

export interface PushRouteOptions {
  push: PushHub
  hub: SocketHub
  sites: SiteRegistry
  guards: Guards
  labelKey: Buffer
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The push connection's session and identity, resolved before the upgrade completes. */
    pushContext: { session: SessionInfo; identity: Identity } | null
  }
}

/** GET /system/push: the kernel's push websocket, behind the same site, session and Origin hooks as every route. */
export async function pushRoutes(app: FastifyInstance, opts: PushRouteOptions): Promise<void> {
  const { push, hub, sites, guards, labelKey } = opts
  const validator = Compile(PushMessage)
  app.decorateRequest('pushContext', null)

  function answer(conn: SocketConnection, message: PushMessage, type: string): void {
    const envelope: Envelope = { type, data: { key: message.data.key } }
    if (message.id !== undefined) envelope.id = message.id
    conn.send(envelope)
  }

  function error(conn: SocketConnection, id: string | undefined, code: string, text: string): void {
    const envelope: Envelope = { type: 'error', data: { error: text, code } }
    if (id !== undefined) envelope.id = id
    conn.send(envelope)
  }

  // One site handle per site, shared by its push connections while any is open (a push
  // connection never acts on its site; the handle is there because every connection has one).
  const handles = new SharedHandles((site) => siteHandle(sites, site, push, PUSH_CONNECTION_PLUGIN))

  function websocket(ws: WebSocket, request: FastifyRequest): void {
    releaseUpgradeRequest(ws, request)
    const site = request.site.name
    const context = request.pushContext
    if (!context) throw new Error('push context not resolved')
    const conn = new SocketConnection(ws, {
      id: randomBytes(8).toString('hex'),
      plugin: PUSH_CONNECTION_PLUGIN,
      site: handles.take(site),
      session: context.session,
      identity: context.identity,
      // A logger that makes its pino child only if the connection ever logs (most never do).
      log: new LazyPluginLogger(request.log, { plugin: PUSH_CONNECTION_PLUGIN, site }),
      codec: 'json',
      validator,
    }, hub.limits)
    hub.add(conn)
    conn.attach({
      onOpen: nothing,
      onMessage: (raw) => {
        const message = raw as PushMessage
        const key = message.data.key
        const problem = keyProblem(key)
        if (problem !== null) {
          error(conn, message.id, 'WIKIFARM_ERR_BAD_KEY', problem)
          return
        }
        if (message.type === 'unsubscribe') {
          push.unsubscribe(conn, key)
          answer(conn, message, 'unsubscribed')
          return
        }
        if (push.subscribe(conn, key) === 'full') {
          error(conn, message.id, 'WIKIFARM_ERR_TOO_MANY_SUBSCRIPTIONS',
            `at most ${push.maxPerConnection} subscriptions per connection: unsubscribe first`)
          return
        }
        answer(conn, message, 'subscribed')
      },
      // Books kept the moment the socket closes.
      onDisconnect: () => {
        push.removeConnection(conn)
        hub.remove(conn)
        handles.release(site)
      },
      onClose: nothing,
    })
  }

  app.route({
    method: 'GET',
    url: '/system/push',
    // Before the upgrade completes: a malformed identity is a 400, as on plugin sockets.
    preHandler: async (request) => {
      const identity = readIdentity(request.query as Record<string, unknown>, request.headers)
      let label: string | undefined
      // What the label needs, not the request: a connection lives for hours and must not
      // keep the upgrade request (its headers, its socket's parser state) alive with it.
      const visitor = request.session
      const siteName = request.site.name
      const session: SessionInfo = Object.freeze({
        get id() {
          label ??= sessionLabel(labelKey, visitor.id, siteName, PUSH_CONNECTION_PLUGIN)
          return label
        },
        isOwner: await guards.isOwner(request),
        isAdmin: guards.isAdmin(request),
      })
      request.pushContext = { session, identity }
    },
    handler: async (request) => {
      throw new ERR_VALIDATION(`${request.url.slice(0, 100)} is a websocket: send an upgrade request`)
    },
    wsHandler: websocket,
  })
}

const nothing = (): void => {}

/** Values made once per key and kept while anyone holds them. */
class SharedHandles<T> {
  readonly #held = new Map<string, { value: T; holders: number }>()
  constructor(readonly make: (key: string) => T) {}

  take(key: string): T {
    let entry = this.#held.get(key)
    if (!entry) {
      entry = { value: this.make(key), holders: 0 }
      this.#held.set(key, entry)
    }
    entry.holders++
    return entry.value
  }

  release(key: string): void {
    const entry = this.#held.get(key)
    if (entry && --entry.holders === 0) this.#held.delete(key)
  }
}
