// The kernel's side of plugin isolation. A PluginHost starts a plugin in a worker thread (with
// V8 heap limits) or a child process (under Node's permission model, as an unprivileged user when
// the farm runs as root, its RSS watched), has it describe itself there (the plugin's module is
// never imported in the farm's thread), and gives the registry a PluginInstance whose handlers
// forward every REST request, websocket connect/message/close
// and event across the boundary, so routing, validation, sockets and status stay the kernel's,
// unchanged. It answers the plugin's own calls (its KernelHandle and site handles) only for
// sites the plugin has been handed, watches the plugin with a heartbeat, and reports its death
// (crash, heap limit, uncaught exception, blocked event loop, protocol abuse) exactly once.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Socket } from 'node:net'
import { Worker } from 'node:worker_threads'
import {
  PluginHttpError, PluginUnavailable, reply,
  type Connection, type EventListeners, type JsonValue, type KernelHandle,
  type PluginInstance, type PluginLogger, type PluginRequest, type RequestContext, type RouteSchemas, type SiteHandle,
  type SocketDeclaration, type Trust,
} from '../../plugin-api.js'
import type { AnyRouteDeclaration } from '../contract.js'
import {
  WS_WINDOW, pluginMessageProblem, type ContextData, type ErrorData, type InstanceInfo, type IsolationMode,
  type KernelMessage,
  type PluginMessage, type RestResult,
} from './channel.js'
import { FrameError, FrameReader, encodeFrame } from './frames.js'
import { sessionPeeks } from '../context.js'
import { PACKAGE_ROOT, nodeModulesFolders } from '../../package-info.js'
import type { Action } from '../../../schemas/action.js'
import { isSendableCloseCode } from '../../sockets/close-codes.js'
import { HANDLER_FAILED, errorMessage } from '../../sockets/error-message.js'

export interface IsolationLimits {
  /** V8 old-generation heap limit of the plugin, MiB. */
  maxHeapMb: number
  /**
   * Memory the plugin may hold, MiB, Buffers and other memory outside the V8 heap included: the
   * child's RSS in `process` mode, its isolate's heap plus external memory in `worker` mode.
   * Default: maxHeapMb + RSS_SLACK_MB.
   */
  maxRssMb?: number
  /** How often the kernel reads a `process` plugin's RSS. */
  memoryCheckMs: number
  /** Heartbeat period; the plugin must answer each ping before the next deadline. */
  heartbeatMs: number
  /** No answer to a ping for this long: the plugin's event loop is blocked, and it is ended. */
  heartbeatDeadlineMs: number
  /** A call the plugin never answers is failed after this long (REST, socket handlers, close). */
  callTimeoutMs: number
  /** Calls in flight to the plugin, and from it, beyond which new ones are refused. */
  maxInFlight: number
  /** Messages per second from the plugin beyond which it is ended as flooding the kernel. */
  maxMessagesPerSecond: number
  /** Malformed or out-of-turn messages tolerated per second before the plugin is ended. */
  maxViolationsPerSecond: number
}

export const DEFAULT_ISOLATION_LIMITS: IsolationLimits = {
  maxHeapMb: 256,
  memoryCheckMs: 100,
  heartbeatMs: 1000,
  heartbeatDeadlineMs: 5000,
  callTimeoutMs: 31_000,
  maxInFlight: 1024,
  maxMessagesPerSecond: 50_000,
  maxViolationsPerSecond: 100,
}

/** What Node itself holds beside the heap (code, stacks, libuv): the default room above maxHeapMb. */
export const RSS_SLACK_MB = 256

/** The memory limit of a plugin under these limits, MiB. */
export function memoryLimitMb(limits: IsolationLimits): number {
  return limits.maxRssMb ?? limits.maxHeapMb + RSS_SLACK_MB
}

export interface HostOptions {
  name: string
  mode: Exclude<IsolationMode, 'none'>
  /** Absolute path of the plugin module, or a package name. */
  module: string
  /** The plugin's own folder: the one place besides node_modules a `process` plugin may read. */
  pluginDir: string | null
  /** Let a `process` plugin load native addons (which the permission model cannot then contain). */
  allowAddons: boolean
  /** More paths a `process` plugin may read (the operator's grant), e.g. /dev for device discovery. */
  allowRead: string[]
  limits: IsolationLimits
  /** The plugin's KernelHandle as the registry builds it: the grant is checked there. */
  kernel: KernelHandle
  /** A handle on a site the plugin may use (the registry's siteHandle, publishing as the plugin). */
  siteHandle(name: string): SiteHandle
  log: PluginLogger
  /** Called once when the plugin dies without being asked to (not after close()). */
  onExit(reason: string): void
}

/**
 * A connection of the plugin as the kernel keeps it: its frames sent and not yet acknowledged,
 * and the frame waiting for room in the window (the socket hub sends one frame at a time).
 */
interface Link {
  conn: Connection<unknown>
  codec: 'text' | 'json'
  inFlight: number
  waiting: { resolve(): void; reject(err: Error): void; timer: NodeJS.Timeout } | null
}

/** A connection that takes frames already encoded (the kernel's SocketConnection does). */
function sendsFrames(conn: object): conn is { sendFrame(frame: string): boolean } {
  return typeof (conn as { sendFrame?: unknown }).sendFrame === 'function'
}

interface Pending {
  resolve(value: RestResult | undefined): void
  reject(err: Error): void
  timer: NodeJS.Timeout
  /** The plugin read the session's id while answering. */
  sessionRead?: () => void
}

/** Fails with the plugin's own error kinds, rebuilt on this side. */
function fromErrorData(error: ErrorData): Error {
  if (error.kind === 'unavailable') return new PluginUnavailable(error.reason, { retryAfterMs: error.retryAfterMs })
  if (error.kind === 'http') return new PluginHttpError(error.statusCode, error.code, error.message)
  return new Error(error.message)
}

/**
 * The session as it crosses. A request's label is peeked: a fresh session sends no cookie unless
 * the plugin reads the id (its result says so), as in-process. A connection's is read: its
 * upgrade is answered already, there is no cookie left to send.
 */
function sessionData(session: RequestContext['session'], peek: boolean): ContextData['session'] {
  const id = (peek ? sessionPeeks.get(session)?.() : undefined) ?? session.id
  return { id, isOwner: session.isOwner, isAdmin: session.isAdmin }
}

function contextData(ctx: RequestContext, peek = false): ContextData {
  return {
    site: ctx.site.name,
    session: sessionData(ctx.session, peek),
    identity: { page: ctx.identity.page, item: ctx.identity.item, lineup: [...ctx.identity.lineup] },
  }
}

/** A small tail of what the plugin printed, for the reason of its death. */
class Tail {
  #text = ''
  push(chunk: string): void {
    this.#text = (this.#text + chunk).slice(-4096)
  }
  get text(): string {
    return this.#text
  }
}

const ENV_COMMAND = '/usr/bin/env'
/** The worker's or child's entry: the compiled sandbox beside this file. */
const SANDBOX = fileURLToPath(new URL('./sandbox.js', import.meta.url))
/** The compiled farm (dist/): the sandbox and the plugin API it imports, read by a `process` plugin. */
const COMPILED_ROOT = fileURLToPath(new URL('../../../', import.meta.url))

/** What the sandbox imports: a path as a file: URL, a package name as it is. */
function moduleSpecifier(module: string): string {
  return isAbsolute(module) ? pathToFileURL(module).href : module
}

/**
 * The user a `process` plugin runs as when the farm runs as root: `nobody`, so the kernel itself
 * refuses its signals to the farm and its reads of the farm's /proc entries, whatever happens
 * inside Node. Null when the farm is not root (it cannot change user): then the guard and the
 * permission model stand alone (docs/security.md).
 */
export function pluginUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null
  try {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'))
    const [, , uid, gid] = line?.split(':') ?? []
    if (uid && gid && Number(uid) > 0 && Number(gid) > 0) return { uid: Number(uid), gid: Number(gid) }
  } catch { /* no passwd file: the conventional id below */ }
  return { uid: 65534, gid: 65534 }
}

/** Resident memory of a process, bytes, from /proc/<pid>/statm; null once it is gone. */
async function residentBytes(pid: number): Promise<number | null> {
  try {
    const pages = Number((await readFile(`/proc/${pid}/statm`, 'utf8')).split(' ')[1])
    return Number.isFinite(pages) ? pages * PAGE_SIZE : null
  } catch {
    return null
  }
}

/** Linux's page size on every platform Node ships for but a few ARM kernels; statm counts pages. */
const PAGE_SIZE = 4096

/** The environment a child process gets: nothing of the kernel's secrets (WIKIFARM_* included). */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const name of ['PATH', 'LANG', 'LC_ALL', 'TZ', 'NODE_ENV']) {
    if (process.env[name] !== undefined) env[name] = process.env[name]
  }
  return env
}

export class PluginHost {
  readonly name: string
  readonly mode: Exclude<IsolationMode, 'none'>
  readonly #options: HostOptions
  readonly #limits: IsolationLimits
  #worker: Worker | null = null
  #child: ChildProcess | null = null
  /** A `process` plugin's channel: the socket pair on its fd 3, carrying frames (frames.ts). */
  #channel: Socket | null = null
  #nextId = 1
  readonly #pending = new Map<number, Pending>()
  /** Calls the plugin made to the kernel that have not been answered yet. */
  #callsInFlight = 0
  readonly #connections = new Map<string, Link>()
  /** Messages posted in this tick, sent together at its end. */
  #outbox: KernelMessage[] = []
  /** Sites the plugin has been handed (by a request, a connection, an event or kernel.site()). */
  readonly #sites = new Set<string>()
  #described: ((definition: unknown) => void) | null = null
  #describeFailed: ((err: Error) => void) | null = null
  #ready: ((info: InstanceInfo) => void) | null = null
  #launchFailed: ((err: Error) => void) | null = null
  #dead = false
  #stopping = false
  #fatal: string | null = null
  readonly #stderr = new Tail()
  #heartbeat: NodeJS.Timeout | null = null
  #memoryWatch: NodeJS.Timeout | null = null
  /** The trust the plugin was launched with: what #allowed() lets it reach. */
  #trust: Trust = 'site'
  #pingSeq = 0
  #lastPong = Date.now()
  #windowStart = Date.now()
  #messages = 0
  #violations = 0
  #logs = 0
  /** Malformed or out-of-turn messages refused so far, for the status view. */
  violationsTotal = 0
  /** Log lines dropped because the plugin logged faster than the kernel keeps. */
  logsDropped = 0

  constructor(options: HostOptions) {
    this.name = options.name
    this.mode = options.mode
    this.#options = options
    this.#limits = options.limits
  }

  get pid(): number | null {
    return this.#child?.pid ?? null
  }

  get alive(): boolean {
    return !this.#dead
  }

  /**
   * Starts the worker or child and has it import the plugin and send back its definition, which
   * resolves unchecked: the registry validates it as it does an in-process plugin's.
   */
  async describe(): Promise<unknown> {
    const described = new Promise<unknown>((resolve, reject) => {
      this.#described = resolve
      this.#describeFailed = reject
    })
    if (this.mode === 'worker') this.#startWorker()
    else this.#startChild()
    this.#post({
      t: 'describe', module: moduleSpecifier(this.#options.module),
      memoryLimitMb: memoryLimitMb(this.#limits), allowAddons: this.#options.allowAddons,
    })
    return described
  }

  /** Launches the plugin described before; resolves with its instance, or rejects with why it did not launch. */
  async launch(trust: Trust, apiVersion: number, options: unknown): Promise<PluginInstance> {
    const ready = new Promise<InstanceInfo>((resolve, reject) => {
      this.#ready = resolve
      this.#launchFailed = reject
    })
    this.#trust = trust
    this.#post({ t: 'launch', trust, apiVersion, options })
    const info = await ready
    this.#startHeartbeat()
    return this.#instance(info)
  }

  #startWorker(): void {
    const worker = new Worker(SANDBOX, {
      // Not the kernel's flags: the test runner's or tsx's loaders have no business here.
      execArgv: [],
      env: childEnv(),
      stdout: true,
      stderr: true,
      resourceLimits: {
        maxOldGenerationSizeMb: this.#limits.maxHeapMb,
        maxYoungGenerationSizeMb: Math.max(4, Math.min(32, Math.floor(this.#limits.maxHeapMb / 8))),
      },
    })
    this.#worker = worker
    this.#pipeOutput(worker.stdout, worker.stderr)
    worker.on('message', (message: unknown) => this.#receive(message))
    worker.on('error', (err: Error & { code?: string }) => {
      this.#fatal ??= err.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? `out of memory: heap limit of ${this.#limits.maxHeapMb} MiB reached`
        : `uncaught exception: ${err.message}`
    })
    worker.on('exit', (code) => this.#exited(`exited with code ${code}`))
  }

  #startChild(): void {
    const pluginDir = this.#options.pluginDir
    // The compiled farm, wikifarm's package.json (a plugin's `wikifarm/plugin` resolves through
    // its exports), the node_modules folders packages resolve from, and the plugin's own folder:
    // never the farm's data, config or sources.
    const reads = [
      COMPILED_ROOT, join(PACKAGE_ROOT, 'package.json'), ...nodeModulesFolders(),
      ...(pluginDir ? [pluginDir] : []), ...this.#options.allowRead,
      // node-gyp-build, which finds a native addon's prebuilt binary, probes this file for musl.
      ...(this.#options.allowAddons ? ['/etc/alpine-release'] : []),
    ]
    const execArgv = [
      '--experimental-permission',
      ...reads.map((path) => `--allow-fs-read=${path}`),
      // No --allow-fs-write, --allow-child-process or --allow-worker: the plugin reaches
      // pages and events through the kernel only.
      ...(this.#options.allowAddons ? ['--allow-addons'] : []),
      `--max-old-space-size=${this.#limits.maxHeapMb}`,
      '--disable-warning=ExperimentalWarning',
    ]
    // Through env(1) without NODE_OPTIONS: the child runs with exactly the flags chosen here,
    // never a --require or --import that the kernel's environment (or a test runner's spawn
    // hook, which rewrites NODE_OPTIONS of every child) would slip past the permission model.
    const child = spawn(ENV_COMMAND, ['-u', 'NODE_OPTIONS', process.execPath, ...execArgv, SANDBOX], {
      env: childEnv(),
      cwd: pluginDir ?? COMPILED_ROOT,
      // fd 3: the channel, a socket pair carrying length-prefixed frames (frames.ts), not Node's
      // IPC, whose reader buffers whatever length the child claims.
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      // A plugin granted native addons drives hardware (a device node the farm's user may open)
      // and runs native code no sandbox holds: it keeps the farm's user, as documented.
      ...(this.#options.allowAddons ? {} : pluginUser()),
    })
    this.#child = child
    this.#watchResidentMemory(child)
    this.#pipeOutput(child.stdout, child.stderr)
    const channel = child.stdio[3] as Socket
    this.#channel = channel
    const reader = new FrameReader()
    channel.on('data', (chunk: Buffer) => {
      if (this.#dead) return
      let batches: unknown[]
      try {
        batches = reader.push(chunk)
      } catch (err) {
        if (!(err instanceof FrameError)) throw err
        this.kill(`protocol violation: ${err.message}`)
        return
      }
      for (const batch of batches) this.#receive(batch)
    })
    // A child gone takes its end of the channel with it: its exit is reported, not this.
    channel.on('error', () => {})
    child.on('error', (err) => { this.#fatal ??= `could not run: ${err.message}` })
    child.on('exit', (code, signal) => {
      const oom = /heap out of memory|Reached heap limit/i.test(this.#stderr.text)
      this.#exited(oom ? `out of memory: heap limit of ${this.#limits.maxHeapMb} MiB reached`
        : signal ? `killed by ${signal}` : `exited with code ${String(code)}`)
    })
  }

  /**
   * Ends a child whose RSS (everything it holds: heap, Buffers, native memory) passes its limit.
   * Polled, so a plugin may overshoot by what it allocates within one period.
   */
  #watchResidentMemory(child: ChildProcess): void {
    const limit = memoryLimitMb(this.#limits)
    let reading = false
    this.#memoryWatch = setInterval(() => {
      if (reading || this.#dead || child.pid === undefined) return
      reading = true
      void residentBytes(child.pid).then((bytes) => {
        reading = false
        if (bytes !== null && bytes > limit * 1024 * 1024) {
          this.kill(`out of memory: RSS ${Math.round(bytes / 1048576)} MiB passed the limit of ${limit} MiB`)
        }
      })
    }, this.#limits.memoryCheckMs)
    this.#memoryWatch.unref()
  }

  #pipeOutput(stdout: NodeJS.ReadableStream | null, stderr: NodeJS.ReadableStream | null): void {
    // What a plugin prints goes to the farm's log as its own lines, never to the kernel's stdout.
    stdout?.on('data', (chunk: Buffer) =>
      this.#log('info', String(chunk).trimEnd().slice(0, 2000), { stream: 'stdout' }),
    )
    stderr?.on('data', (chunk: Buffer) => {
      const text = String(chunk)
      this.#stderr.push(text)
      this.#log('warn', text.trimEnd().slice(0, 2000), { stream: 'stderr' })
    })
  }

  #log(level: 'debug' | 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>): void {
    this.#rollWindow()
    if (++this.#logs > 200) {
      this.logsDropped++
      return
    }
    this.#options.log[level](message, data)
  }

  /** Starts a new one-second window for the message, violation and log counts when the last is over. */
  #rollWindow(): void {
    const now = Date.now()
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now
      this.#messages = 0
      this.#violations = 0
      this.#logs = 0
    }
  }

  #startHeartbeat(): void {
    this.#lastPong = Date.now()
    this.#heartbeat = setInterval(() => {
      if (this.#dead) return
      const silent = Date.now() - this.#lastPong
      if (silent > this.#limits.heartbeatDeadlineMs) {
        this.kill(
          `event loop blocked: no heartbeat answer for ${silent} ms (deadline ${this.#limits.heartbeatDeadlineMs} ms)`,
        )
        return
      }
      this.#post({ t: 'ping', seq: ++this.#pingSeq })
    }, this.#limits.heartbeatMs)
    this.#heartbeat.unref()
  }

  /** Queues a message; what is queued in one tick crosses as one batch, at the tick's end. */
  #post(message: KernelMessage): void {
    if (this.#dead) return
    if (this.#outbox.push(message) === 1) setImmediate(this.#flush)
  }

  readonly #flush = (): void => {
    const batch = this.#outbox
    this.#outbox = []
    if (this.#dead || batch.length === 0) return
    try {
      this.#write(batch.length === 1 ? batch[0] as KernelMessage : batch)
    } catch {
      // One message that cannot be cloned must not take the others with it: each alone, and
      // the one that fails fails its call.
      for (const message of batch) {
        try {
          this.#write(message)
        } catch (err) {
          this.#unsent(message, err as Error)
        }
      }
    }
  }

  #write(batch: KernelMessage | KernelMessage[]): void {
    if (this.#worker) this.#worker.postMessage(batch)
    else if (this.#channel?.writable) this.#channel.write(encodeFrame(batch))
  }

  #unsent(message: KernelMessage, err: Error): void {
    const id = 'id' in message && message.t !== 'answer' ? message.id : undefined
    const pending = id === undefined ? undefined : this.#pending.get(id)
    if (pending && id !== undefined) {
      this.#pending.delete(id)
      clearTimeout(pending.timer)
      pending.reject(new Error(`the request cannot cross the isolation boundary: ${err.message}`))
    } else {
      this.#options.log.error('a message could not cross to the plugin', { type: message.t, err: err.message })
    }
  }

  #violation(problem: string): void {
    this.violationsTotal++
    this.#rollWindow()
    if (++this.#violations > this.#limits.maxViolationsPerSecond) {
      this.kill(
        `protocol violations: more than ${this.#limits.maxViolationsPerSecond} malformed or out-of-turn messages in ` +
          `a second (last: ${problem})`,
      )
      return
    }
    // One line per violation up to the cap: a broken plugin is visible, not a log flood.
    this.#options.log.warn('refused a message from the plugin', { problem })
  }

  #receive(raw: unknown): void {
    if (Array.isArray(raw)) {
      for (const message of raw) this.#receiveOne(message)
    } else {
      this.#receiveOne(raw)
    }
  }

  #receiveOne(raw: unknown): void {
    if (this.#dead) return
    this.#rollWindow()
    if (++this.#messages > this.#limits.maxMessagesPerSecond) {
      this.kill(`flooding the kernel: more than ${this.#limits.maxMessagesPerSecond} messages in a second`)
      return
    }
    const problem = pluginMessageProblem(raw)
    if (problem) {
      this.#violation(problem)
      return
    }
    const message = raw as PluginMessage
    switch (message.t) {
      case 'definition':
        if (!this.#described) return this.#violation('definition out of turn')
        this.#described(message.definition)
        this.#described = null
        this.#describeFailed = null
        return
      case 'describe-failed':
        if (!this.#describeFailed) return this.#violation('describe-failed out of turn')
        this.#describeFailed(fromErrorData(message.error))
        this.#described = null
        this.#describeFailed = null
        this.#stopping = true
        this.#terminate()
        return
      case 'ready':
        if (!this.#ready) return this.#violation('ready twice')
        this.#ready(message.instance)
        this.#ready = null
        this.#launchFailed = null
        return
      case 'launch-failed':
        if (!this.#launchFailed) return this.#violation('launch-failed after launch')
        this.#launchFailed(fromErrorData(message.error))
        this.#ready = null
        this.#launchFailed = null
        this.#stopping = true
        this.#terminate()
        return
      case 'result': {
        const pending = this.#pending.get(message.id)
        // A reply to nothing: answered twice, answered after its timeout, or made up.
        if (!pending) return this.#violation(`result for call ${message.id}, which is not waiting for one`)
        this.#pending.delete(message.id)
        clearTimeout(pending.timer)
        if (message.session === true) pending.sessionRead?.()
        if (message.ok) pending.resolve(message.value)
        else pending.reject(fromErrorData(message.error))
        return
      }
      case 'call':
        this.#call(message)
        return
      case 'send': {
        const link = this.#connections.get(message.conn)
        // Sends after a close cross with the close: dropped, not a violation.
        if (!link) return
        // Encoded by the codec on the plugin's side; a plugin could put anything in a frame, but
        // only for its own client, which it can send anything anyway.
        if (sendsFrames(link.conn)) link.conn.sendFrame(message.frame)
        else link.conn.send(link.codec === 'json' ? JSON.parse(message.frame) : message.frame)
        return
      }
      case 'ws-done':
        this.#acknowledged(message.conn, message.n)
        return
      case 'ws-failed': {
        const link = this.#connections.get(message.conn)
        if (!link) return
        this.#acknowledged(message.conn, 1)
        // As the socket hub answers a failed in-process handler.
        link.conn.log.error('message handler failed', { err: message.message.slice(0, 2000) })
        link.conn.send(errorMessage(link.codec, message.id, HANDLER_FAILED.code, HANDLER_FAILED.error))
        return
      }
      case 'close-conn': {
        if (!isSendableCloseCode(message.code)) return this.#violation(`close code ${message.code} cannot be sent`)
        this.#connections.get(message.conn)?.conn.close(message.code, message.reason.slice(0, 200))
        return
      }
      case 'log': {
        const data = message.site === undefined ? message.data : { ...message.data, site: message.site }
        this.#log(message.level, message.message.slice(0, 2000), data)
        return
      }
      case 'pong':
        this.#lastPong = Date.now()
        return
      case 'fatal':
        this.#fatal = message.reason.slice(0, 500)
        return
    }
  }

  /** May the plugin act on this site? Farm plugins: any site the grant allows; site plugins: those handed. */
  async #allowed(site: string): Promise<string> {
    if (this.#sites.has(site)) return site
    if (this.#trust === 'farm') {
      const handle = await this.#options.kernel.site(site)
      this.#sites.add(handle.name)
      return handle.name
    }
    throw new PluginHttpError(
      403,
      'WIKIFARM_ERR_PLUGIN_NOT_ENABLED',
      `plugin ${this.name} has not been handed site ${JSON.stringify(site.slice(0, 100))}`,
    )
  }

  #call(message: Extract<PluginMessage, { t: 'call' }>): void {
    const answer = (result: Promise<unknown>): void => {
      result.then(
        (value) => this.#post({ t: 'answer', id: message.id, ok: true, value }),
        (err: unknown) => {
          const e = err as Error & { code?: string; statusCode?: number }
          this.#post({
            t: 'answer',
            id: message.id,
            ok: false,
            error: {
              kind: 'error',
              message: e?.message ?? String(err),
              ...(typeof e?.code === 'string' ? { code: e.code } : {}),
            },
          })
        },
      ).finally(() => { this.#callsInFlight-- })
    }
    this.#callsInFlight++
    if (this.#callsInFlight > this.#limits.maxInFlight) {
      answer(Promise.reject(new Error(`more than ${this.#limits.maxInFlight} calls to the kernel in flight`)))
      return
    }
    const args = message.args
    const kernel = this.#options.kernel
    switch (message.op) {
      case 'sites':
        answer(kernel.sites())
        return
      case 'site':
        answer(kernel.site(String(args[0])).then((handle) => {
          this.#sites.add(handle.name)
          return handle.name
        }))
        return
      default: {
        const site = message.site
        if (site === undefined) {
          answer(Promise.reject(new Error(`${message.op} names no site`)))
          return
        }
        answer(this.#allowed(site).then((name): Promise<unknown> => {
          const handle = this.#options.siteHandle(name)
          switch (message.op) {
            case 'getPage': return handle.getPage(String(args[0]))
            case 'listSlugs': return handle.listSlugs()
            case 'sitemap': return handle.sitemap()
            case 'applyAction': return handle.applyAction(String(args[0]), args[1] as Action)
            case 'publish': return handle.publish(String(args[0]), args[1] as JsonValue)
            default: throw new Error(`unknown operation ${String(message.op)}`)
          }
        }))
      }
    }
  }

  /** The plugin has handled `n` frames of a connection: room for as many in its window. */
  #acknowledged(connId: string, n: number): void {
    const link = this.#connections.get(connId)
    if (!link) return
    link.inFlight = Math.max(0, link.inFlight - n)
    const waiting = link.waiting
    if (waiting && link.inFlight < WS_WINDOW) {
      link.waiting = null
      clearTimeout(waiting.timer)
      waiting.resolve()
    }
  }

  /**
   * Sends a frame of a connection without waiting for the plugin to handle it; waits only when
   * the connection's window is full, and fails as a call does when the plugin never makes room.
   */
  #frame(link: Link, message: unknown): Promise<void> | undefined {
    if (this.#dead)
      return Promise.reject(new PluginUnavailable(`${this.name} is not running: ${this.#fatal ?? 'it stopped'}`))
    this.#post({ t: 'ws-message', conn: link.conn.id, message })
    if (++link.inFlight < WS_WINDOW) return undefined
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        link.waiting = null
        reject(new Error(`${this.name} did not answer within ${this.#limits.callTimeoutMs} ms`))
      }, this.#limits.callTimeoutMs)
      timer.unref()
      link.waiting = { resolve, reject, timer }
    })
  }

  /** Sends a call the plugin must answer; fails when it dies, times out or too many wait. */
  #request(build: (id: number) => KernelMessage, sessionRead?: () => void): Promise<RestResult | undefined> {
    if (this.#dead)
      return Promise.reject(new PluginUnavailable(`${this.name} is not running: ${this.#fatal ?? 'it stopped'}`))
    if (this.#pending.size >= this.#limits.maxInFlight) {
      return Promise.reject(
        new PluginUnavailable(`${this.name} is overloaded: ${this.#limits.maxInFlight} calls in flight`),
      )
    }
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`${this.name} did not answer within ${this.#limits.callTimeoutMs} ms`))
      }, this.#limits.callTimeoutMs)
      timer.unref()
      this.#pending.set(id, sessionRead ? { resolve, reject, timer, sessionRead } : { resolve, reject, timer })
      try {
        this.#post(build(id))
      } catch (err) {
        clearTimeout(timer)
        this.#pending.delete(id)
        reject(new Error(`the request cannot cross the isolation boundary: ${(err as Error).message}`))
      }
    })
  }

  #instance(info: InstanceInfo): PluginInstance {
    const routes: AnyRouteDeclaration[] = info.routes.map((route, index) => ({
      method: route.method,
      url: route.url,
      ...(route.schema ? { schema: route.schema as RouteSchemas } : {}),
      handler: async (request: PluginRequest<RouteSchemas>, ctx: RequestContext) => {
        this.#sites.add(ctx.site.name)
        const result = await this.#request((id) => ({
          t: 'rest', id, route: index,
          request: {
            method: request.method, path: request.path, params: request.params, query: request.query,
            body: request.body, headers: { ...request.headers },
          },
          ctx: contextData(ctx, true),
        }), () => { void ctx.session.id })
        if (result?.kind === 'reply')
          return reply({ status: result.status, headers: result.headers, body: result.body })
        return result?.value
      },
    }))
    const sockets = info.sockets.map((socket, index) => ({
      url: socket.url,
      codec: socket.codec,
      ...(socket.protocol !== undefined ? { protocol: socket.protocol } : {}),
      ...(socket.codec === 'json' ? { message: socket.message } : {}),
      onConnect: async (conn: Connection<unknown>) => {
        this.#sites.add(conn.site.name)
        this.#connections.set(conn.id, { conn, codec: socket.codec, inFlight: 0, waiting: null })
        await this.#request((id) => ({
          t: 'ws-open',
          id,
          socket: index,
          conn: conn.id,
          protocol: conn.protocol,
          ctx: contextData(conn),
        }))
      },
      onMessage: (conn: Connection<unknown>, message: unknown) => {
        const link = this.#connections.get(conn.id)
        if (link) return this.#frame(link, message)
        // Gone with its plugin, which has no handler left to run.
        return Promise.reject(new PluginUnavailable(`${this.name} is not running: ${this.#fatal ?? 'it stopped'}`))
      },
      onClose: async (conn: Connection<unknown>, code: number, reason: string) => {
        const link = this.#connections.get(conn.id)
        this.#connections.delete(conn.id)
        if (link?.waiting) {
          clearTimeout(link.waiting.timer)
          link.waiting.resolve()
        }
        // A dead plugin has no close handler left to run.
        if (this.#dead) return
        await this.#request((id) => ({ t: 'ws-close', id, conn: conn.id, code, reason }))
      },
    })) as unknown as SocketDeclaration[]
    const events: EventListeners = {}
    for (const name of info.events) {
      (events as Record<string, (payload: unknown) => void>)[name] = (payload: unknown) => {
        const site = (payload as { site?: unknown }).site
        if (typeof site === 'string') this.#sites.add(site)
        this.#post({ t: 'event', name, payload })
      }
    }
    return {
      routes,
      sockets,
      events,
      close: () => this.close(),
    }
  }

  /** Asks the plugin to run its close, then ends it. */
  async close(): Promise<void> {
    if (this.#dead) return
    this.#stopping = true
    try {
      await this.#request((id) => ({ t: 'close', id }))
    } finally {
      this.#terminate()
    }
  }

  /** Ends the plugin now, reporting `reason` as its death. */
  kill(reason: string): void {
    if (this.#dead) return
    this.#fatal = reason
    this.#terminate()
    // terminate() is asynchronous; the plugin is dead to the kernel from now on.
    this.#exited(reason)
  }

  /** Ends the plugin without reporting it (launch failed, launch timed out, close). */
  terminate(): void {
    this.#stopping = true
    this.#terminate()
    this.#exited('terminated by the kernel')
  }

  #terminate(): void {
    if (this.#worker) void this.#worker.terminate()
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL')
  }

  #exited(fallback: string): void {
    if (this.#dead) return
    this.#dead = true
    if (this.#heartbeat) clearInterval(this.#heartbeat)
    if (this.#memoryWatch) clearInterval(this.#memoryWatch)
    const reason = this.#fatal ?? fallback
    // Every call in flight is answered now, never left to hang.
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer)
      pending.reject(new PluginUnavailable(`${this.name} stopped: ${reason}`))
      this.#pending.delete(id)
    }
    this.#describeFailed?.(new Error(`the plugin exited before it described itself: ${reason}`))
    this.#described = null
    this.#describeFailed = null
    this.#launchFailed?.(new Error(`the plugin exited before it launched: ${reason}`))
    this.#ready = null
    this.#launchFailed = null
    for (const link of this.#connections.values()) {
      if (!link.waiting) continue
      clearTimeout(link.waiting.timer)
      link.waiting.reject(new PluginUnavailable(`${this.name} stopped: ${reason}`))
    }
    this.#connections.clear()
    this.#outbox = []
    if (!this.#stopping) this.#options.onExit(reason)
  }
}
