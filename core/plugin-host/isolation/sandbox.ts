// The plugin's side of an isolation boundary: runs inside a worker thread or a child process,
// launches the plugin module unchanged, and rebuilds for it the API it would get in-process:
// a KernelHandle, site handles, request contexts and connections whose every operation is a
// message to the kernel. Nothing here trusts itself: the kernel checks each message again.
// This file is the entry of the worker or child. On the kernel's `describe` it installs the
// guard (guard.ts) and a memory watchdog, then imports the plugin's own compiled module (its
// top-level code runs here, never in the farm's thread) and sends back its definition; on
// `launch` it launches it. No loader and no bundle: plain JavaScript from dist/.
import { Socket } from 'node:net'
import { parentPort } from 'node:worker_threads'
import {
  PluginHttpError, PluginUnavailable, SUBPROTOCOL_V1, type Connection, type EventContext, type KernelHandle,
  type PluginInstance, type PluginLogger, type RequestContext, type SiteHandle, type SocketDeclaration,
} from '../../plugin-api.js'
import {
  isDefinedPlugin, isPluginHttpError, isPluginReply, isPluginUnavailable, type AnyRouteDeclaration, type DefinedPlugin,
} from '../contract.js'
import {
  WS_WINDOW, errorData, type Batch, type CallOp, type ContextData, type DescriptionData, type ErrorData,
  type KernelMessage,
  type PluginMessage, type RestResult,
} from './channel.js'
import { FrameReader, encodeFrame } from './frames.js'
import { installGuard } from './guard.js'
import { CLOSE, assertSendableCloseCode } from '../../sockets/close-codes.js'

/** How often the sandbox measures its own isolate against the memory limit. */
const MEMORY_CHECK_MS = 100
/** Exit code of a plugin ended by its own memory watchdog. */
const EXIT_OUT_OF_MEMORY = 71

interface Port {
  post(message: Batch<PluginMessage>): void
  listen(handler: (message: Batch<KernelMessage>) => void): void
  /** Calls `exit` when the kernel's end of the channel is gone (a child's; a worker ends with the farm). */
  onClose?(exit: () => void): void
}

function workerPort(): Port | null {
  if (!parentPort) return null
  const port = parentPort
  return { post: (m) => port.postMessage(m), listen: (h) => port.on('message', h) }
}

function processPort(): Port | null {
  // fd 3 is the kernel's socket pair (host.ts): frames both ways (frames.ts).
  let channel: Socket
  try {
    channel = new Socket({ fd: 3, readable: true, writable: true })
  } catch {
    return null
  }
  const reader = new FrameReader()
  return {
    post: (m) => { channel.write(encodeFrame(m)) },
    listen: (h) => channel.on('data', (chunk: Buffer) => {
      for (const batch of reader.push(chunk)) h(batch as Batch<KernelMessage>)
    }),
    // The kernel gone means this plugin has no one to serve.
    onClose: (exit) => {
      channel.on('end', exit)
      channel.on('close', exit)
      channel.on('error', exit)
    },
  }
}

function asError(error: ErrorData): Error {
  if (error.kind === 'unavailable') return new PluginUnavailable(error.reason, { retryAfterMs: error.retryAfterMs })
  if (error.kind === 'http') return new PluginHttpError(error.statusCode, error.code, error.message)
  return new Error(error.message)
}

function toErrorData(err: unknown): ErrorData {
  return errorData(err, isPluginUnavailable, isPluginHttpError)
}

/** Serves the kernel on this side of the boundary; the plugin is imported on `launch`. */
function startSandbox(): void {
  const found = parentPort ? workerPort() : processPort()
  if (!found) throw new Error('the plugin sandbox runs only in a worker thread or a child process with IPC')
  const port: Port = found
  const isProcess = !parentPort
  // Taken before any plugin code runs: a plugin that replaces process.exit cannot keep itself alive.
  const exit = process.exit.bind(process)
  // What this side produces in one tick crosses as one batch at the tick's end: one post (one
  // wake-up of the kernel's thread, one write) for a burst of results, frames and acknowledgements.
  let outbox: PluginMessage[] = []
  /** Frames handled per connection since the last batch, acknowledged in it as one message each. */
  const handled = new Map<string, number>()
  const post = (message: PluginMessage): void => {
    if (outbox.push(message) === 1 && handled.size === 0) setImmediate(flush)
  }
  const acknowledge = (conn: string): void => {
    const n = (handled.get(conn) ?? 0) + 1
    if (handled.size === 0 && outbox.length === 0) setImmediate(flush)
    handled.set(conn, n)
    // The kernel sends no more than WS_WINDOW unacknowledged; never more in one count.
    if (n >= WS_WINDOW) {
      handled.delete(conn)
      outbox.push({ t: 'ws-done', conn, n })
    }
  }
  function flush(): void {
    for (const [conn, n] of handled) outbox.push({ t: 'ws-done', conn, n })
    handled.clear()
    const batch = outbox
    outbox = []
    if (batch.length === 0) return
    try {
      port.post(batch.length === 1 ? batch[0] as PluginMessage : batch)
    } catch {
      for (const message of batch) postAlone(message)
    }
  }
  /** A message the batch could not carry (a value that cannot be cloned): alone, or its failure. */
  function postAlone(message: PluginMessage): void {
    try {
      port.post(message)
    } catch (err) {
      // A value that cannot be cloned (a function, a class instance with private state) is the
      // plugin's mistake: answer the call with an error rather than leaving it unanswered.
      const why = (err as Error).message
      if (message.t === 'result' && message.ok) {
        port.post({
          t: 'result', id: message.id, ok: false,
          error: { kind: 'error', message: `the reply cannot cross the isolation boundary: ${why}` },
        })
      } else if (message.t === 'call') {
        const pending = calls.get(message.id)
        calls.delete(message.id)
        pending?.reject(new TypeError(`the arguments cannot cross the isolation boundary: ${why}`, { cause: err }))
      } else if (message.t === 'log') {
        port.post({ ...message, data: { data: String(message.data) } })
      } else {
        process.stderr.write(`a ${message.t} message cannot cross the isolation boundary: ${why}\n`)
      }
    }
  }
  /**
   * Sends now, for a message that must leave before the process may end: its death, and the
   * steps of its start (a plugin whose import left a rejected promise behind dies of it soon).
   */
  const postNow = (message: PluginMessage): void => {
    post(message)
    flush()
  }

  if (isProcess) {
    // Node would print the error and exit; the kernel wants the reason first.
    const fatal = (err: unknown): void => {
      try {
        postNow({ t: 'fatal', reason: `uncaught exception: ${err instanceof Error ? err.message : String(err)}` })
      } catch {
        /* exiting anyway */
      }
      process.exitCode = 70
      setImmediate(() => exit(70))
    }
    process.on('uncaughtException', fatal)
    process.on('unhandledRejection', fatal)
    port.onClose?.(() => exit(0))
  }

  let nextCall = 1
  const calls = new Map<number, { resolve(value: unknown): void; reject(err: Error): void }>()
  function call(op: CallOp, site: string | undefined, args: unknown[]): Promise<unknown> {
    const id = nextCall++
    return new Promise((resolve, reject) => {
      calls.set(id, { resolve, reject })
      const message: PluginMessage =
        site === undefined ? { t: 'call', id, op, args } : { t: 'call', id, op, site, args }
      post(message)
    })
  }

  function logger(site?: string): PluginLogger {
    const log = (level: 'debug' | 'info' | 'warn' | 'error') => (message: string, data?: Record<string, unknown>) => {
      const entry: PluginMessage = { t: 'log', level, message: String(message) }
      if (data !== undefined) {
        // Logged data is for people: what does not clone (an Error, a function) goes as text.
        try { entry.data = structuredClone(data) } catch { entry.data = { data: String(data) } }
      }
      if (site !== undefined) entry.site = site
      post(entry)
    }
    return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') }
  }

  const handles = new Map<string, SiteHandle>()
  function siteHandle(name: string): SiteHandle {
    let handle = handles.get(name)
    if (!handle) {
      const site: SiteHandle = {
        name,
        getPage: (slug: string) => call('getPage', name, [slug]) as ReturnType<SiteHandle['getPage']>,
        listSlugs: () => call('listSlugs', name, []) as ReturnType<SiteHandle['listSlugs']>,
        sitemap: () => call('sitemap', name, []) as ReturnType<SiteHandle['sitemap']>,
        applyAction: (slug, action) =>
          call('applyAction', name, [slug, action]) as ReturnType<SiteHandle['applyAction']>,
        publish: (key, value) => call('publish', name, [key, value]) as ReturnType<SiteHandle['publish']>,
      }
      handle = Object.freeze(site)
      handles.set(name, handle)
    }
    return handle
  }

  /** `sessionRead` hears the handler read `session.id`: the kernel then uses the session, as in-process. */
  function context(data: ContextData, sessionRead?: () => void): RequestContext {
    const session = data.session
    return Object.freeze({
      site: siteHandle(data.site),
      session: sessionRead
        ? Object.freeze({
          get id() {
            sessionRead()
            return session.id
          },
          isOwner: session.isOwner,
          isAdmin: session.isAdmin,
        })
        : Object.freeze({ ...session }),
      identity: Object.freeze({
        page: data.identity.page,
        item: data.identity.item,
        lineup: Object.freeze([...data.identity.lineup]),
      }),
      log: logger(data.site),
    })
  }

  class RemoteConnection implements Connection<unknown> {
    readonly id: string
    readonly protocol: typeof SUBPROTOCOL_V1 | null
    readonly site: SiteHandle
    readonly session: RequestContext['session']
    readonly identity: RequestContext['identity']
    readonly log: PluginLogger
    readonly #codec: 'text' | 'json'
    #closed = false
    /** Frames (and the close) waiting for the one being handled: a connection's run in order. */
    readonly #backlog: (() => unknown)[] = []
    #busy = false

    constructor(id: string, protocol: string | null, ctx: RequestContext, codec: 'text' | 'json') {
      this.id = id
      this.#codec = codec
      this.protocol = protocol === SUBPROTOCOL_V1 ? SUBPROTOCOL_V1 : null
      this.site = ctx.site
      this.session = ctx.session
      this.identity = ctx.identity
      this.log = ctx.log
    }

    get closed(): boolean {
      return this.#closed
    }

    markClosed(): void {
      this.#closed = true
    }

    // True means handed to the kernel; the kernel still drops for a client that is not
    // reading (and closes it with 1013), which this side learns when the close arrives.
    send(message: unknown): boolean {
      if (this.#closed) return false
      // Encoded here, as the kernel would in-process (a value JSON cannot hold throws here too):
      // the kernel's thread only writes the frame.
      const frame = this.#codec === 'json' ? JSON.stringify(message) as string | undefined : String(message)
      if (frame === undefined) throw new TypeError('a json socket message must be a JSON value')
      post({ t: 'send', conn: this.id, frame })
      return true
    }

    /**
     * Runs `work` after the connection's earlier work has finished, then `done` with its
     * outcome. A handler that returns at once runs at once: no promise, no microtask.
     */
    run(work: () => unknown, done: (err: unknown) => void): void {
      const step = (): void => {
        this.#busy = true
        let result: unknown
        try {
          result = work()
        } catch (err) {
          this.#next(done, err)
          return
        }
        if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') {
          (result as Promise<unknown>).then(
            () => this.#next(done, undefined),
            (err: unknown) => this.#next(done, err ?? new Error(String(err))),
          )
        } else {
          this.#next(done, undefined)
        }
      }
      if (this.#busy) this.#backlog.push(step)
      else step()
    }

    #next(done: (err: unknown) => void, err: unknown): void {
      this.#busy = false
      done(err)
      const step = this.#backlog.shift()
      if (step) step()
    }

    close(code: number = CLOSE.NORMAL, reason = ''): void {
      // The kernel's rule, so misuse throws here as it would in-process.
      assertSendableCloseCode(code)
      if (this.#closed) return
      this.#closed = true
      post({ t: 'close-conn', conn: this.id, code, reason: String(reason) })
    }
  }

  let instance: PluginInstance | null = null
  let routes: AnyRouteDeclaration[] = []
  let sockets: SocketDeclaration[] = []
  const connections = new Map<string, { conn: RemoteConnection; socket: SocketDeclaration }>()

  function answer(id: number, run: () => Promise<RestResult | undefined>, sessionRead?: () => boolean): void {
    Promise.resolve().then(run).then(
      (value) => {
        const result: PluginMessage = value === undefined
          ? { t: 'result', id, ok: true }
          : { t: 'result', id, ok: true, value }
        if (sessionRead?.()) result.session = true
        post(result)
      },
      (err: unknown) => {
        const result: PluginMessage = { t: 'result', id, ok: false, error: toErrorData(err) }
        if (sessionRead?.()) result.session = true
        post(result)
      },
    )
  }

  let plugin: DefinedPlugin | null = null

  /**
   * The plugin's own isolate (heap, and what it holds outside it: Buffers, ArrayBuffers) against
   * its limit, from a reference taken before any plugin code runs. In a worker this is the one
   * measure Node 20 offers (the kernel cannot read a worker's heap statistics); in a child the
   * kernel also watches the whole process's RSS.
   */
  function watchMemory(limitMb: number): void {
    const memoryUsage = process.memoryUsage.bind(process)
    const timer = setInterval(() => {
      const usage = memoryUsage()
      const held = usage.heapUsed + usage.external
      if (held <= limitMb * 1024 * 1024) return
      clearInterval(timer)
      try {
        const mb = Math.round(held / 1048576)
        postNow({ t: 'fatal', reason: `out of memory: ${mb} MiB held (heap and Buffers), limit ${limitMb} MiB` })
      } finally {
        exit(EXIT_OUT_OF_MEMORY)
      }
    }, MEMORY_CHECK_MS)
    timer.unref()
  }

  async function describe(message: Extract<KernelMessage, { t: 'describe' }>): Promise<void> {
    installGuard(isProcess ? 'process' : 'worker', message.allowAddons)
    watchMemory(message.memoryLimitMb)
    const loaded = (await import(message.module) as { default?: unknown }).default
    if (!isDefinedPlugin(loaded)) throw new Error('its default export is not a definePlugin() result')
    plugin = loaded
    // Plain data only: the schema as JSON (TypeBox's symbols do not cross), the rest as declared.
    const definition: DescriptionData = {
      name: loaded.name, apiVersion: loaded.apiVersion, trust: loaded.trust,
      ...(loaded.options !== undefined
        ? { options: JSON.parse(JSON.stringify(loaded.options)) as Record<string, unknown> }
        : {}),
      ...(loaded.isolationModes !== undefined ? { isolationModes: [...loaded.isolationModes] } : {}),
      ...(loaded.placement !== undefined ? { placement: loaded.placement } : {}),
    }
    postNow({ t: 'definition', definition })
  }

  async function launch(message: Extract<KernelMessage, { t: 'launch' }>): Promise<void> {
    if (!plugin) throw new Error('launch before describe')
    const handle: KernelHandle = {
      apiVersion: message.apiVersion,
      trust: message.trust,
      log: logger(),
      sites: () => call('sites', undefined, []) as Promise<string[]>,
      site: async (name: string) => siteHandle(await call('site', undefined, [name]) as string),
    }
    const launched = await plugin.launch(handle, message.options as never)
    if (launched === null || typeof launched !== 'object') throw new Error('launch must resolve to an object')
    instance = launched
    routes = instance.routes ?? []
    sockets = instance.sockets ?? []
    for (const route of routes) {
      if (typeof route.handler !== 'function') throw new Error(`route ${route.method} ${route.url}: no handler`)
    }
    const events = Object.entries(instance.events ?? {})
      .filter(([, fn]) => typeof fn === 'function')
      .map(([name]) => name)
    postNow({
      t: 'ready',
      instance: {
        routes: routes.map((r) => ({
          method: r.method,
          url: r.url,
          ...(r.schema ? { schema: r.schema as Record<string, unknown> } : {}),
        })),
        sockets: sockets.map((s) => ({
          url: s.url,
          codec: s.codec,
          ...(s.protocol !== undefined ? { protocol: s.protocol } : {}),
          ...(s.codec === 'json' ? { message: s.message } : {}),
        })),
        events,
      },
    })
  }

  function handle(message: KernelMessage): void {
    switch (message.t) {
      case 'describe':
        describe(message).catch((err: unknown) => postNow({ t: 'describe-failed', error: toErrorData(err) }))
        return
      case 'launch':
        launch(message).catch((err: unknown) => postNow({ t: 'launch-failed', error: toErrorData(err) }))
        return
      case 'ping':
        post({ t: 'pong', seq: message.seq })
        return
      case 'answer': {
        const pending = calls.get(message.id)
        if (!pending) return
        calls.delete(message.id)
        if (message.ok) pending.resolve(message.value)
        else pending.reject(asError(message.error))
        return
      }
      case 'rest': {
        let sessionRead = false
        const ctx = context(message.ctx, () => { sessionRead = true })
        answer(message.id, async () => {
          const route = routes[message.route]
          if (!route) throw new Error(`no route ${message.route}`)
          const result = await route.handler(Object.freeze({ ...message.request }) as never, ctx)
          if (isPluginReply(result))
            return { kind: 'reply', status: result.status, headers: { ...result.headers }, body: result.body }
          return { kind: 'json', value: result }
        }, () => sessionRead)
        return
      }
      case 'ws-open':
        answer(message.id, async () => {
          const socket = sockets[message.socket]
          if (!socket) throw new Error(`no socket ${message.socket}`)
          const conn = new RemoteConnection(message.conn, message.protocol, context(message.ctx), socket.codec)
          connections.set(conn.id, { conn, socket })
          await socket.onConnect?.(conn as never)
          return undefined
        })
        return
      case 'ws-message': {
        const entry = connections.get(message.conn)
        if (!entry) {
          acknowledge(message.conn)
          return
        }
        const { conn, socket } = entry
        conn.run(() => socket.onMessage?.(conn as never, message.message as never), (err) => {
          if (err === undefined) {
            acknowledge(conn.id)
            return
          }
          const rawId = (message.message as { id?: unknown } | null)?.id
          const id = typeof rawId === 'string' ? rawId : undefined
          const why = err instanceof Error ? err.message : String(err)
          post(id === undefined
            ? { t: 'ws-failed', conn: conn.id, message: why }
            : { t: 'ws-failed', conn: conn.id, id, message: why })
        })
        return
      }
      case 'ws-close': {
        const entry = connections.get(message.conn)
        if (!entry) {
          post({ t: 'result', id: message.id, ok: true })
          return
        }
        connections.delete(message.conn)
        // After the frames before it, as in-process.
        entry.conn.run(() => {
          entry.conn.markClosed()
          return entry.socket.onClose?.(entry.conn as never, message.code, message.reason)
        }, (err) => {
          post(err === undefined
            ? { t: 'result', id: message.id, ok: true }
            : { t: 'result', id: message.id, ok: false, error: toErrorData(err) })
        })
        return
      }
      case 'event': {
        const listener = (
          instance?.events as Record<string, ((e: unknown, ctx: EventContext) => unknown) | undefined> | undefined
        )?.[message.name]
        if (!listener) return
        const site = (message.payload as { site?: unknown }).site
        const ctx: EventContext = { site: siteHandle(typeof site === 'string' ? site : '') }
        // A listener that fails is logged, as the kernel's event bus does in-process.
        Promise.resolve().then(() => listener(message.payload, ctx)).catch((err: unknown) => {
          logger().error(`listener for ${message.name} failed`, {
            err: err instanceof Error ? err.message : String(err),
          })
        })
        return
      }
      case 'close':
        answer(message.id, async () => {
          await instance?.close?.()
          return undefined
        })
        return
    }
  }

  port.listen((batch) => {
    if (Array.isArray(batch)) for (const message of batch) handle(message)
    else handle(batch)
  })
}

startSandbox()
