// The plugin SDK, what `import … from 'wikifarm/plugin'` gives a plugin author, and nothing
// else: definePlugin, route, socket, reply, the two errors and the types of what a plugin
// declares and receives. A plugin declares its REST routes, websocket routes and event
// listeners from `launch`, which the kernel calls once per process, at start. Everything a
// plugin receives is data or a kernel-owned handle with async methods, so the same plugin runs
// in the kernel, a worker or a child process unchanged. Plugins never see Fastify, ws or the
// http server.
//
// A leaf: it imports only schemas/ and TypeBox types, so a plugin package's copy of it brings
// no kernel code along. What only the kernel uses (the guards that recognise what this module
// builds, the versions it launches) is in core/plugin-host/contract.ts.
import type { Static, TSchema } from 'typebox'
import type { Page } from '../schemas/page.js'
import type { SitemapEntry } from '../schemas/sitemap.js'
import type { Action } from '../schemas/action.js'

/** The plugin API major version of this SDK; definePlugin stamps it on every plugin. */
export const API_VERSION = 1
/** The websocket subprotocol of the kernel's conventions (docs/protocol.md). */
export const SUBPROTOCOL_V1 = 'wikifarm.v1'

export type Trust = 'farm' | 'site'
/**
 * Where a plugin runs in a farm of many nodes on one PostgreSQL store: on every node (each
 * serves its own connections), or on one node at a time, elected among the nodes (a device
 * attached to one machine). The operator may override it (plugins.<name>.placement).
 */
export type Placement = 'every-node' | 'one-node'
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
// Object members may be undefined: JSON.stringify leaves them out, as authors expect.
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue | undefined }

// What this module builds is branded with registered symbols (Symbol.for), not recognised by
// class identity: a plugin package brings its own copy of this module, and the kernel's guards
// (core/plugin-host/contract.ts) must recognise that copy's errors, replies and plugins too.
// The keys are part of the contract between copies: never rename them.
const UNAVAILABLE = Symbol.for('wikifarm.unavailable')
const HTTP_ERROR = Symbol.for('wikifarm.http-error')
const REPLY = Symbol.for('wikifarm.reply')
const DEFINED = Symbol.for('wikifarm.plugin')

/** Thrown by `launch` (or a handler) when the plugin cannot serve now, e.g. no device attached. */
export class PluginUnavailable extends Error {
  readonly reason: string
  /** Ask the kernel to try launching again after this many milliseconds. */
  readonly retryAfterMs: number | undefined

  constructor(reason: string, options: { retryAfterMs?: number } = {}) {
    super(reason)
    this.name = 'PluginUnavailable'
    this.reason = reason
    this.retryAfterMs = options.retryAfterMs
    Object.defineProperty(this, UNAVAILABLE, { value: true })
  }
}

/** Thrown by a REST handler to answer a client error with a status and a code of its own. */
export class PluginHttpError extends Error {
  readonly statusCode: number
  readonly code: string

  constructor(statusCode: number, code: string, message: string) {
    super(message)
    this.name = 'PluginHttpError'
    this.statusCode = statusCode
    this.code = code
    Object.defineProperty(this, HTTP_ERROR, { value: true })
  }
}

export interface PluginLogger {
  debug(message: string, data?: Record<string, unknown>): void
  info(message: string, data?: Record<string, unknown>): void
  warn(message: string, data?: Record<string, unknown>): void
  error(message: string, data?: Record<string, unknown>): void
}

/** One site as a plugin may use it. Every method is async and returns plain data. */
export interface SiteHandle {
  readonly name: string
  getPage(slug: string): Promise<Page | null>
  listSlugs(): Promise<string[]>
  sitemap(): Promise<SitemapEntry[]>
  /** Applies a journal action as the kernel would for the owner; resolves to the new page. */
  applyAction(slug: string, action: Action): Promise<Page>
  /**
   * Sends `value` to every client subscribed to `key` on this site over GET /system/push, as
   * `{type:'published', data:{key, plugin, value}}`; resolves to how many it was sent to.
   * `key` is `<slug>` or `<slug>/<item-id>`; the site is this handle's, never another.
   */
  publish(key: string, value: JsonValue): Promise<number>
}

/** Who is asking, as resolved by the kernel: trusted. */
export interface SessionInfo {
  /** Opaque and stable per visitor and site; never the cookie. */
  readonly id: string
  readonly isOwner: boolean
  readonly isAdmin: boolean
}

/** What the client says about where it is: shape-checked, never used for authorisation. */
export interface Identity {
  readonly page: string | null
  readonly item: string | null
  readonly lineup: readonly string[]
}

export interface RequestContext {
  readonly site: SiteHandle
  readonly session: SessionInfo
  readonly identity: Identity
  readonly log: PluginLogger
}

/** TypeBox schemas a REST route declares; the kernel validates before the handler runs. */
export interface RouteSchemas {
  params?: TSchema
  querystring?: TSchema
  body?: TSchema
  /** The 200 response; the kernel serialises what the handler returns. */
  response?: TSchema
}

// Not distributive: a route declared without a schema has `TSchema | undefined` here, which
// must give the fallback, not `unknown`.
type StaticOr<S, Fallback> = [S] extends [TSchema] ? Static<S> : Fallback

export interface PluginRequest<S extends RouteSchemas> {
  readonly method: HttpMethod
  /** The path below /plugin/<name>, e.g. /status. */
  readonly path: string
  readonly params: StaticOr<S['params'], Record<string, string>>
  readonly query: StaticOr<S['querystring'], Record<string, string | string[]>>
  readonly body: StaticOr<S['body'], unknown>
  readonly headers: Readonly<Record<string, string>>
}

/** A full reply, when a handler needs a status, headers or a non-JSON body: build it with reply(). */
export interface PluginReply {
  readonly [REPLY]: true
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: JsonValue | string | Uint8Array
}

/** A reply with a status and headers; a string or bytes body is sent as is, anything else as JSON. */
export function reply(options: {
  status?: number
  headers?: Record<string, string>
  body: JsonValue | string | Uint8Array
}): PluginReply {
  return Object.freeze({
    [REPLY]: true as const, status: options.status ?? 200, headers: { ...options.headers }, body: options.body,
  })
}

export type RouteResult<S extends RouteSchemas> =
  | (S['response'] extends TSchema ? Static<S['response']> : JsonValue)
  | PluginReply

export interface RouteDeclaration<S extends RouteSchemas = RouteSchemas> {
  method: HttpMethod
  /** Below /plugin/<name>; find-my-way syntax, e.g. '/status' or '/pages/:slug'. */
  url: string
  schema?: S
  handler(request: PluginRequest<S>, ctx: RequestContext): Promise<RouteResult<S>>
}

/** Helps TypeScript infer a route's schema types from its declaration. */
export function route<S extends RouteSchemas>(declaration: RouteDeclaration<S>): RouteDeclaration<S> {
  return declaration
}

/** The JSON envelope of every message on a `json` socket. */
export interface Envelope<T = JsonValue> {
  type: string
  id?: string
  data?: T
}

export interface Connection<Out = unknown> extends RequestContext {
  /** Unique per connection, for logs and labels. */
  readonly id: string
  /** The negotiated convention: 'wikifarm.v1', or null for a plain (legacy) client. */
  readonly protocol: typeof SUBPROTOCOL_V1 | null
  /**
   * Queues a message; false when it was dropped because the client is not reading
   * (the kernel closes such a client with 1013 once its buffer cap is reached).
   */
  send(message: Out): boolean
  close(code?: number, reason?: string): void
  readonly closed: boolean
}

export interface TextSocketDeclaration {
  url: string
  codec: 'text'
  /**
   * Serve only connections that negotiated this subprotocol. A url may have one declaration
   * with it and one without: clients offering wikifarm.v1 get the first, plain clients the
   * second (how a legacy text path and the JSON envelope share one url).
   */
  protocol?: typeof SUBPROTOCOL_V1
  onConnect?(conn: Connection<string>): void | Promise<void>
  onMessage?(conn: Connection<string>, message: string): void | Promise<void>
  onClose?(conn: Connection<string>, code: number, reason: string): void | Promise<void>
}

export interface JsonSocketDeclaration<M extends TSchema = TSchema> {
  url: string
  codec: 'json'
  /**
   * Serve only connections that negotiated this subprotocol. A url may have one declaration
   * with it and one without: clients offering wikifarm.v1 get the first, plain clients the
   * second (how a legacy text path and the JSON envelope share one url).
   */
  protocol?: typeof SUBPROTOCOL_V1
  /** Schema of an incoming envelope; frames that fail it get an error message, never the handler. */
  message: M
  onConnect?(conn: Connection<Envelope>): void | Promise<void>
  onMessage?(conn: Connection<Envelope>, message: Static<M>): void | Promise<void>
  onClose?(conn: Connection<Envelope>, code: number, reason: string): void | Promise<void>
}

export type SocketDeclaration = TextSocketDeclaration | JsonSocketDeclaration

/** Helps TypeScript infer a json socket's message type from its schema. */
export function socket<M extends TSchema>(declaration: JsonSocketDeclaration<M>): JsonSocketDeclaration<M>
export function socket(declaration: TextSocketDeclaration): TextSocketDeclaration
export function socket(declaration: SocketDeclaration): SocketDeclaration {
  return declaration
}

/** What an event listener gets beside the event: a handle on the site the event is about. */
export interface EventContext {
  readonly site: SiteHandle
}

/** What the kernel tells plugins about, by event name (listen with `events` in the instance). */
export interface FarmEvents {
  'page.changed': { site: string; slug: string; action: Action; page: Page }
  'page.deleted': { site: string; slug: string }
  'site.opened': { site: string }
  'site.created': { site: string }
  'site.closed': { site: string }
  'site.claimed': { site: string; owner: string }
  'connection.opened': { site: string; plugin: string; connectionId: string }
  'connection.closed': { site: string; plugin: string; connectionId: string; code: number }
}

export type EventListeners = {
  [E in keyof FarmEvents]?: (event: FarmEvents[E], ctx: EventContext) => void | Promise<void>
}

/**
 * A route with its schema types erased, as `launch` returns it. Declare routes with route()
 * so each handler is checked against its own schemas. (The kernel names it AnyRouteDeclaration.)
 */
interface ErasedRoute {
  method: HttpMethod
  url: string
  schema?: RouteSchemas
  // Method syntax keeps parameters bivariant, so any route() result is assignable here.
  handler(request: PluginRequest<RouteSchemas>, ctx: RequestContext): Promise<unknown>
}

export interface PluginInstance {
  routes?: ErasedRoute[]
  sockets?: SocketDeclaration[]
  events?: EventListeners
  /** Called once at shutdown or before a relaunch, with a timeout. */
  close?(): Promise<void>
}

/** What `launch` receives. A `site` plugin's handle reaches only the sites it is enabled on. */
export interface KernelHandle {
  readonly apiVersion: number
  readonly trust: Trust
  readonly log: PluginLogger
  /** The sites this plugin may use now: all of the farm's for `farm` trust. */
  sites(): Promise<string[]>
  /** A site's handle; refused for sites outside the plugin's grant. */
  site(name: string): Promise<SiteHandle>
}

export interface PluginDefinition<O extends TSchema = TSchema> {
  /** Routes live under /plugin/<name>. Lowercase letters, digits and dashes. */
  name: string
  /** The plugin API major it is written for; definePlugin fills in this SDK's API_VERSION. */
  apiVersion?: number
  /** The trust the plugin requests; the operator grants it (or not). */
  trust: Trust
  /** Schema of the operator's options for this plugin. */
  options?: O
  /**
   * The isolation modes this plugin can run in (plugins.<name>.isolation); all when absent. A
   * plugin whose native dependencies are not safe in a worker thread (serialport) leaves it out,
   * and the kernel refuses that mode with a clear reason instead of letting the process abort.
   */
  isolationModes?: readonly ('none' | 'worker' | 'process')[]
  /**
   * Where the plugin runs in a farm of many nodes: 'every-node' (the default, and what a plugin
   * written before this field existed gets) or 'one-node' (elected; the other nodes forward its
   * requests and websockets to the owner). A single-node farm runs every plugin, either way.
   */
  placement?: Placement
  /**
   * Called once, at kernel start. Throw PluginUnavailable when the plugin cannot serve now
   * (its retryAfterMs asks the kernel to try again later, e.g. for hot-plugged hardware).
   */
  launch(kernel: KernelHandle, options: Static<O>): Promise<PluginInstance>
}

/**
 * Builds a plugin's default export: frozen, its API version stamped, and branded (at run time
 * only, so a plugin's declarations name no private symbol) for the kernel to recognise.
 */
export function definePlugin<O extends TSchema>(
  definition: PluginDefinition<O>,
): Readonly<PluginDefinition<O> & { apiVersion: number }> {
  return Object.freeze({ ...definition, apiVersion: definition.apiVersion ?? API_VERSION, [DEFINED]: true as const })
}
