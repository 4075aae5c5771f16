// The messages that carry the plugin API across an isolation boundary (a worker thread or a
// child process), in both directions, and the checks the kernel applies to every message a
// plugin sends. Everything here is structured-clone data: no functions, no kernel objects.
// The kernel side is host.ts, the plugin side sandbox.ts, both beside this file.
import type { HttpMethod, Identity, JsonValue, Placement, Trust } from '../../plugin-api.js'

/** Where a plugin runs: in the kernel's own thread, a worker thread, or a child process. */
export type IsolationMode = 'none' | 'worker' | 'process'
export const ISOLATION_MODES: readonly IsolationMode[] = ['none', 'worker', 'process']

/** A session as it crosses: computed once by the kernel, read-only on the other side. */
export interface SessionData {
  id: string
  isOwner: boolean
  isAdmin: boolean
}

/** A request's or a connection's context as it crosses: the site by name only. */
export interface ContextData {
  site: string
  session: SessionData
  identity: Identity
}

/** An error a plugin raised, as it crosses; the kernel maps each kind as it does in-process. */
export type ErrorData =
  | { kind: 'unavailable'; reason: string; retryAfterMs?: number }
  | { kind: 'http'; statusCode: number; code: string; message: string }
  | { kind: 'error'; message: string }

/** What a REST handler returned: JSON data, or a full reply (which loses its symbol in a clone). */
export type RestResult =
  | { kind: 'json'; value: unknown }
  | { kind: 'reply'; status: number; headers: Record<string, string>; body: JsonValue | string | Uint8Array }

export interface RouteInfo { method: HttpMethod; url: string; schema?: Record<string, unknown> }
export interface SocketInfo { url: string; codec: 'text' | 'json'; protocol?: string; message?: unknown }

/** The plugin's declarations, without the functions, which stay on the plugin's side. */
export interface InstanceInfo {
  routes: RouteInfo[]
  sockets: SocketInfo[]
  events: string[]
}

/** The operations a plugin may ask the kernel for: its KernelHandle's and its site handles'. */
export type CallOp = 'sites' | 'site' | 'getPage' | 'listSlugs' | 'sitemap' | 'applyAction' | 'publish'
export const CALL_OPS: readonly CallOp[] = [
  'sites',
  'site',
  'getPage',
  'listSlugs',
  'sitemap',
  'applyAction',
  'publish',
]

/**
 * A plugin's definition as it crosses, read inside its worker or child: everything but its
 * launch function. Nothing here is trusted: the kernel checks each field (describedPlugin()).
 */
export interface DescriptionData {
  name: string
  apiVersion: number
  trust: Trust
  /** The options schema: JSON Schema (a TypeBox schema is one), compiled by the kernel. */
  options?: Record<string, unknown>
  isolationModes?: IsolationMode[]
  /** Where it runs in a farm of many nodes (plugin-api.ts Placement). */
  placement?: Placement
}

/**
 * Frames of one connection the kernel sends ahead of their acknowledgement: enough to keep a
 * pipelining client's frames flowing without a round trip each, few enough that a flooding
 * client queues at most this many (each at most the socket's maxPayload) in the plugin.
 */
export const WS_WINDOW = 32

/**
 * Messages cross in batches: what one side produces in one tick is posted (or written) once,
 * as an array. A single message may also cross on its own.
 */
export type Batch<M> = M | M[]

/** Kernel → plugin. `id` numbers a call the plugin answers with a `result`. */
export type KernelMessage =
  /**
   * The first message: import the plugin's compiled module (`module`, a file: URL or a package
   * name) and answer with its definition. `memoryLimitMb` bounds the plugin's isolate (heap and
   * memory outside it, Buffers included) from then on, its top-level code included.
   */
  | { t: 'describe'; module: string; memoryLimitMb: number; allowAddons: boolean }
  /** Launch the plugin described before, with the trust and options the kernel settled. */
  | { t: 'launch'; trust: Trust; apiVersion: number; options: unknown }
  | {
      t: 'rest'
      id: number
      route: number
      request: {
        method: HttpMethod
        path: string
        params: unknown
        query: unknown
        body: unknown
        headers: Record<string, string>
      }
      ctx: ContextData
    }
  | { t: 'ws-open'; id: number; socket: number; conn: string; protocol: string | null; ctx: ContextData }
  /**
   * A frame for a connection, not answered one by one: the plugin handles a connection's frames
   * in order and acknowledges them in bulk (`ws-done`, `ws-failed`); the kernel keeps at most
   * WS_WINDOW of them unacknowledged per connection.
   */
  | { t: 'ws-message'; conn: string; message: unknown }
  | { t: 'ws-close'; id: number; conn: string; code: number; reason: string }
  | { t: 'event'; name: string; payload: unknown }
  | { t: 'close'; id: number }
  | { t: 'ping'; seq: number }
  /** The answer to a plugin's `call`. */
  | { t: 'answer'; id: number; ok: true; value: unknown }
  | { t: 'answer'; id: number; ok: false; error: ErrorData & { code?: string } }

/** Plugin → kernel. */
export type PluginMessage =
  | { t: 'definition'; definition: DescriptionData }
  | { t: 'describe-failed'; error: ErrorData }
  | { t: 'ready'; instance: InstanceInfo }
  | { t: 'launch-failed'; error: ErrorData }
  /** `session`: the handler read `ctx.session.id`, so the kernel uses the session (its cookie). */
  | { t: 'result'; id: number; ok: true; value?: RestResult; session?: true }
  | { t: 'result'; id: number; ok: false; error: ErrorData; session?: true }
  | { t: 'call'; id: number; op: CallOp; site?: string; args: unknown[] }
  /** A frame for the plugin's client, already encoded by the socket's codec on the plugin's side. */
  | { t: 'send'; conn: string; frame: string }
  /** `n` frames of a connection handled. */
  | { t: 'ws-done'; conn: string; n: number }
  /** One frame of a connection whose handler failed; `id` is its envelope's, to answer. */
  | { t: 'ws-failed'; conn: string; id?: string; message: string }
  | { t: 'close-conn'; conn: string; code: number; reason: string }
  | {
      t: 'log'
      level: 'debug' | 'info' | 'warn' | 'error'
      message: string
      data?: Record<string, unknown>
      site?: string
    }
  | { t: 'pong'; seq: number }
  /** Sent by a child process just before it exits on an uncaught exception. */
  | { t: 'fatal'; reason: string }

const LEVELS = new Set(['debug', 'info', 'warn', 'error'])
const ERROR_KINDS = new Set(['unavailable', 'http', 'error'])

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isCallId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) > 0
}

function isShortString(value: unknown, max: number): value is string {
  return typeof value === 'string' && value.length <= max
}

function isErrorData(value: unknown): value is ErrorData {
  return isRecord(value) && ERROR_KINDS.has(value.kind as string)
}

/**
 * Why a message from a plugin is not one the kernel accepts, or null when it is well formed.
 * Only the shape is checked here; whether an id is pending or a site is granted is the host's.
 */
export function pluginMessageProblem(message: unknown): string | null {
  if (!isRecord(message) || typeof message.t !== 'string') return 'not a message object with a type'
  switch (message.t) {
    case 'definition':
      // Its fields are the registry's to judge, with the reasons an in-process plugin gets.
      return isRecord(message.definition) ? null : 'definition without a definition object'
    case 'describe-failed':
      return isErrorData(message.error) ? null : 'describe-failed without an error'
    case 'ready':
      return isRecord(message.instance) &&
        Array.isArray(message.instance.routes) &&
        Array.isArray(message.instance.sockets) &&
        Array.isArray(message.instance.events)
        ? null
        : 'ready without its declarations'
    case 'launch-failed':
      return isErrorData(message.error) ? null : 'launch-failed without an error'
    case 'result':
      if (!isCallId(message.id)) return 'result without a call id'
      if (message.ok === true)
        return message.value === undefined || isRecord(message.value) ? null : 'result with a malformed value'
      return message.ok === false && isErrorData(message.error) ? null : 'result without ok and a value or an error'
    case 'call':
      if (!isCallId(message.id)) return 'call without an id'
      if (!CALL_OPS.includes(message.op as CallOp))
        return `call of unknown operation ${JSON.stringify(String(message.op).slice(0, 40))}`
      if (message.site !== undefined && !isShortString(message.site, 300)) return 'call with a malformed site'
      return Array.isArray(message.args) && message.args.length <= 4 ? null : 'call with malformed arguments'
    case 'send':
      return isShortString(message.conn, 64) && typeof message.frame === 'string'
        ? null : 'send without a connection id and a frame'
    case 'ws-done':
      return isShortString(message.conn, 64) && Number.isSafeInteger(message.n) && (message.n as number) > 0 &&
        (message.n as number) <= WS_WINDOW ? null : 'ws-done without a connection id and a count'
    case 'ws-failed':
      return isShortString(message.conn, 64) && typeof message.message === 'string' &&
        (message.id === undefined || isShortString(message.id, 200))
        ? null : 'ws-failed without a connection id and a message'
    case 'close-conn':
      return isShortString(message.conn, 64) && Number.isInteger(message.code) && typeof message.reason === 'string'
        ? null : 'close-conn without a connection id, code and reason'
    case 'log':
      return LEVELS.has(message.level as string) && typeof message.message === 'string' &&
        (message.data === undefined || isRecord(message.data)) ? null : 'log without a level and a message'
    case 'pong':
      return Number.isSafeInteger(message.seq) ? null : 'pong without a sequence number'
    case 'fatal':
      return typeof message.reason === 'string' ? null : 'fatal without a reason'
    default:
      return `unknown message type ${JSON.stringify(String(message.t).slice(0, 40))}`
  }
}

/** An error as data, for the boundary. */
export function errorData(
  err: unknown,
  isUnavailable: (e: unknown) => e is { reason: string; retryAfterMs: number | undefined },
  isHttp: (e: unknown) => e is { statusCode: number; code: string; message: string },
): ErrorData {
  if (isUnavailable(err))
    return err.retryAfterMs === undefined
      ? { kind: 'unavailable', reason: err.reason }
      : { kind: 'unavailable', reason: err.reason, retryAfterMs: err.retryAfterMs }
  if (isHttp(err)) return { kind: 'http', statusCode: err.statusCode, code: err.code, message: err.message }
  return { kind: 'error', message: err instanceof Error ? err.message : String(err) }
}
