// The farm's side of the legacy child (child-main.ts): spawns it, forwards each admitted legacy
// request and websocket upgrade to it over its private unix socket, answers its plugins' page
// reads and writes through the site's store, and restarts it (with a bounded backoff) when it
// dies, failing only the legacy requests in flight. The farm's own thread never loads a legacy
// plugin, so node:domain (and the async hooks it turns on for the whole process) stays out of it.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { Agent, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ERR_PLUGIN_UNAVAILABLE } from '../../errors.js'
import type { PluginLogger } from '../../plugin-api.js'
import { PageValidator, isSlug } from '../../../schemas/page.js'
import {
  FACTS_HEADER, type ChildToFarm, type FarmToChild, type ForwardedFacts, type LegacyChildSettings, type StartMessage,
} from './child-protocol.js'
import type { LegacyChildStatus, LegacyStatus } from './types.js'
import type { LegacySite } from './scope.js'
import { sendCoded } from './coded.js'

const CHILD = fileURLToPath(new URL('./child-main.js', import.meta.url))
/** Restart delays: doubled per crash from the first, up to the last; reset after a minute of life. */
const FIRST_BACKOFF_MS = 100
const MAX_BACKOFF_MS = 10_000
const STABLE_AFTER_MS = 60_000
/** Headers of one hop (RFC 9110 7.6.1): this connection's, not to be passed on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection'])
/** Sites the child may reach pages of: those it was forwarded a request for, most recent kept. */
const MAX_SITES = 4096

export interface LegacyChildOptions extends LegacyChildSettings {
  /** No answer to a ping for this long: the child's event loop is blocked (a plugin's busy loop); it is killed. */
  heartbeatDeadlineMs?: number
  maxInstances?: number
  log: PluginLogger
}


/** The environment the child gets: nothing of the farm's secrets (WIKIFARM_* included). */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const name of ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'NODE_ENV', 'TMPDIR']) {
    if (process.env[name] !== undefined) env[name] = process.env[name]
  }
  return env
}

/**
 * Node's permission model for the child: it reads what it likes (plugins read their own files,
 * the farm's client and node_modules), but writes only in the farm's data, its socket's folder
 * and /dev (a serial device: txtzyme). Child processes stay allowed: plugmatic asks `npm view`
 * for its status view (its install is refused by the farm, refusals.ts).
 */
function permissions(data: string, folder: string): string[] {
  return [
    '--experimental-permission', '--allow-fs-read=*', `--allow-fs-write=${data}`, `--allow-fs-write=${folder}`,
    '--allow-fs-write=/dev', '--allow-child-process',
  ]
}

export class LegacyChild {
  readonly #options: LegacyChildOptions
  #child: ChildProcess | null = null
  #token = ''
  #socket: string | null = null
  #statuses: LegacyStatus[] = []
  #restarts = 0
  #backoff = FIRST_BACKOFF_MS
  #startedAt = 0
  #state: LegacyChildStatus['state'] = 'stopped'
  #lastExit: string | null = null
  #closing = false
  #restartTimer: NodeJS.Timeout | null = null
  #folder: string | null = null
  #heartbeat: NodeJS.Timeout | null = null
  #lastPong = 0
  #ready: Promise<void> = Promise.resolve()
  #nextId = 1
  readonly #statusCalls = new Map<number, (statuses: LegacyStatus[]) => void>()
  readonly #sites = new Map<string, LegacySite>()
  /** What is in flight to the child: ended when it dies. */
  readonly #inFlight = new Set<{ fail(reason: string): void }>()
  /** Visitors' sockets upgraded into the child's plugins: the farm's close does not reach them. */
  readonly #upgraded = new Set<Duplex>()
  #maxInstances: number | null = null
  /** Connections to the child, kept open between requests (it keeps them longer: no reuse race). */
  #agent = new Agent({ keepAlive: true, timeout: 30_000 })

  constructor(options: LegacyChildOptions) {
    this.#options = options
  }

  status(): LegacyChildStatus {
    return { pid: this.#child?.pid ?? null, restarts: this.#restarts, state: this.#state, lastExit: this.#lastExit }
  }

  /** The plugins' statuses as the child last reported them. */
  get statuses(): LegacyStatus[] {
    return this.#statuses
  }

  /** Starts the child; resolves once its plugins have launched (or it failed to start). */
  start(): Promise<void> {
    this.#ready = this.#spawn()
    return this.#ready
  }

  #spawn(): Promise<void> {
    this.#state = this.#restarts === 0 ? 'starting' : 'restarting'
    this.#token = randomBytes(24).toString('base64url')
    this.#socket = null
    this.#agent.destroy()
    this.#agent = new Agent({ keepAlive: true, timeout: 30_000 })
    // Through env(1) without NODE_OPTIONS: the child runs with exactly these flags, not a
    // --require a test runner's spawn hook would add.
    // A folder only the farm's user can enter, for the child's socket: no other local user reaches it.
    this.#removeFolder()
    // The data folder exists before the child starts: the permission model grants writes under
    // it, not the making of it, and a fresh farm makes it only on its first write, so plugins
    // that make their folders at start (assets and image, through multer) were refused.
    try {
      mkdirSync(this.#options.config.data, { recursive: true })
    } catch (err) {
      this.#options.log.warn('cannot make the data folder for the legacy plugins', { err: String(err) })
    }
    this.#folder = mkdtempSync(join(tmpdir(), 'wikifarm-legacy-'))
    const folder = this.#folder
    const child = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath,
      ...permissions(this.#options.config.data, folder),
      // The permission model's warnings are for whoever chose the flags: here, the farm.
      '--disable-warning=ExperimentalWarning', '--disable-warning=DeprecationWarning',
      '--disable-warning=SecurityWarning', CHILD], {
      env: childEnv(),
      // Its own folder: the farm's data folder may not exist yet.
      cwd: folder,
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    })
    this.#child = child
    this.#startedAt = Date.now()
    const { log } = this.#options
    child.stdout?.on('data', (chunk: Buffer) => log.info(String(chunk).trimEnd().slice(0, 2000), { stream: 'stdout' }))
    child.stderr?.on('data', (chunk: Buffer) => log.warn(String(chunk).trimEnd().slice(0, 2000), { stream: 'stderr' }))
    const ready = new Promise<void>((resolve) => {
      child.on('message', (message: ChildToFarm) => {
        if (message.t === 'hello') {
          child.send(start)
        } else if (message.t === 'ready') {
          this.#socket = message.socket
          this.#statuses = message.statuses
          this.#state = 'running'
          this.#watch(child)
          resolve()
        } else if (message.t === 'pong') {
          this.#lastPong = Date.now()
        } else {
          this.#receive(message)
        }
      })
      child.once('exit', (code, signal) => {
        resolve()
        this.#exited(child, signal ? `killed by ${signal}` : `exited with code ${String(code)}`)
      })
      // Node could not start it (no exit follows): a crash like any other, restarted with the backoff.
      child.once('error', (err) => {
        resolve()
        this.#exited(child, `could not run: ${err.message}`)
      })
    })
    const start: StartMessage = {
      t: 'start', token: this.#token, socket: join(folder, 'legacy.sock'), config: this.#options.config,
      packages: this.#options.packages,
      grants: this.#options.grants, builtins: this.#options.builtins,
      launchTimeoutMs: this.#options.launchTimeoutMs, handlerTimeoutMs: this.#options.handlerTimeoutMs,
      maxInstances: this.#maxInstances ?? this.#options.maxInstances ?? null,
    }
    return ready
  }

  /** Pings the child; one that does not answer within the deadline is blocked, and killed (then restarted). */
  #watch(child: ChildProcess): void {
    const deadline = this.#options.heartbeatDeadlineMs ?? 5000
    this.#lastPong = Date.now()
    let seq = 0
    if (this.#heartbeat) clearInterval(this.#heartbeat)
    this.#heartbeat = setInterval(() => {
      if (this.#child !== child) return
      if (Date.now() - this.#lastPong > deadline) {
        this.#options.log.error('legacy child blocked: no heartbeat answer; killing it', { deadlineMs: deadline })
        child.kill('SIGKILL')
        return
      }
      this.#post({ t: 'ping', seq: ++seq })
    }, Math.max(50, Math.min(1000, Math.floor(deadline / 4))))
    this.#heartbeat.unref()
  }

  #exited(child: ChildProcess, how: string): void {
    if (this.#child !== child) return
    if (this.#heartbeat) clearInterval(this.#heartbeat)
    this.#heartbeat = null
    this.#child = null
    this.#socket = null
    for (const call of this.#inFlight) call.fail(`the legacy child ${how}`)
    this.#inFlight.clear()
    for (const [id, resolve] of this.#statusCalls) {
      resolve(this.#statuses)
      this.#statusCalls.delete(id)
    }
    if (this.#closing) {
      this.#state = 'stopped'
      this.#removeFolder()
      return
    }
    this.#lastExit = how
    this.#state = 'restarting'
    if (Date.now() - this.#startedAt > STABLE_AFTER_MS) this.#backoff = FIRST_BACKOFF_MS
    const delay = this.#backoff
    this.#backoff = Math.min(MAX_BACKOFF_MS, this.#backoff * 2)
    this.#options.log.error('legacy child ended; restarting', { reason: how, restartInMs: delay })
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null
      if (this.#closing) return
      this.#restarts++
      this.#ready = this.#spawn()
    }, delay)
    this.#restartTimer.unref()
  }

  #post(message: FarmToChild): void {
    if (this.#child?.connected) this.#child.send(message)
  }

  #receive(message: ChildToFarm): void {
    if (message.t === 'log') {
      this.#options.log[message.level](message.message, message.data)
    } else if (message.t === 'status') {
      this.#statuses = message.statuses
      this.#statusCalls.get(message.id)?.(message.statuses)
      this.#statusCalls.delete(message.id)
    } else if (message.t === 'page') {
      void this.#page(message).then(
        (value) => this.#post({ t: 'page-result', id: message.id, value }),
        (err: unknown) =>
          this.#post({ t: 'page-result', id: message.id, error: String((err as Error)?.message ?? err) }),
      )
    }
  }

  /** A plugin's page read or write, for a site the child was handed a request for. */
  async #page(message: Extract<ChildToFarm, { t: 'page' }>): Promise<unknown> {
    const site = this.#sites.get(message.site)
    if (!site) throw new Error(`no request for ${String(message.site).slice(0, 100)} was forwarded`)
    if (message.op === 'slugs') return site.store.listSlugs()
    if (!isSlug(message.slug)) throw new Error('not a page slug')
    if (message.op === 'get') {
      const stored = await site.getPage(message.slug)
      return stored ? { page: stored.page } : null
    }
    if (!PageValidator.Check(message.page)) throw new Error('not a page: it needs a title and a story of items')
    await site.putPage(message.slug, message.page)
    return null
  }

  /** The plugins' statuses, asked of the child now (the last known ones if it does not answer soon). */
  async freshStatuses(): Promise<LegacyStatus[]> {
    if (!this.#child?.connected || this.#socket === null) return this.#statuses
    const id = this.#nextId++
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#statusCalls.delete(id)
        resolve(this.#statuses)
      }, 1000)
      this.#statusCalls.set(id, (statuses) => { clearTimeout(timer); resolve(statuses) })
      this.#post({ t: 'status', id })
    })
  }

  #note(site: LegacySite): void {
    this.#sites.delete(site.name)
    this.#sites.set(site.name, site)
    if (this.#sites.size > MAX_SITES) this.#sites.delete(this.#sites.keys().next().value as string)
  }

  /** The headers to forward: the visitor's, minus any claim to be the farm's facts, plus the farm's. */
  #headers(
    req: IncomingMessage, facts: Omit<ForwardedFacts, 'token'>, upgrade = false,
  ): Record<string, string | string[]> {
    const headers: Record<string, string | string[]> = {}
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || name === FACTS_HEADER) continue
      // The visitor's connection is not the child's; an upgrade keeps what makes it one.
      if (!upgrade && HOP_BY_HOP.has(name)) continue
      headers[name] = value
    }
    headers[FACTS_HEADER] = Buffer.from(JSON.stringify({ ...facts, token: this.#token })).toString('base64url')
    return headers
  }

  async #socketPath(): Promise<string | null> {
    if (this.#socket === null) await this.#ready
    return this.#socket
  }

  /** Forwards an HTTP request (its body streamed) and pipes the child's answer back. */
  async forward(
    req: IncomingMessage, res: ServerResponse, facts: Omit<ForwardedFacts, 'token'>, site: LegacySite,
    timeoutMs: number,
  ): Promise<void> {
    const socketPath = await this.#socketPath()
    const unavailable = (reason: string): void =>
      sendCoded(res, Object.assign(new ERR_PLUGIN_UNAVAILABLE(facts.plugin), { reason }))
    if (socketPath === null) return unavailable(`the legacy child is ${this.#state}`)
    this.#note(site)
    await new Promise<void>((resolve) => {
      const call = {
        fail: (reason: string): void => {
          outgoing.destroy()
          if (res.headersSent) res.destroy()
          else unavailable(reason)
          resolve()
        },
      }
      let answered = false
      const outgoing = httpRequest({
        socketPath, method: req.method, path: req.url, headers: this.#headers(req, facts), agent: this.#agent,
        // The child answers its own 504 at the handler timeout; this is for a child that hangs.
        timeout: timeoutMs + 2000,
      }, (answer) => {
        answered = true
        res.writeHead(answer.statusCode ?? 502, endToEnd(answer.rawHeaders))
        answer.pipe(res)
        answer.on('error', () => res.destroy())
      })
      this.#inFlight.add(call)
      res.on('close', () => {
        this.#inFlight.delete(call)
        if (!res.writableFinished) outgoing.destroy()
        resolve()
      })
      outgoing.on('timeout', () => call.fail('the legacy child did not answer in time'))
      outgoing.on('error', (err) => {
        // A plugin may answer before it reads the body (a refusal) and close: what it said stands.
        if (!answered) call.fail(`the legacy child could not be reached: ${err.message}`)
      })
      req.pipe(outgoing)
    })
  }

  /**
   * Forwards a websocket upgrade: the child's 101 (or its refusal) is written to the visitor's
   * socket, then bytes flow both ways until either side ends.
   */
  async forwardUpgrade(
    req: IncomingMessage, socket: Duplex, head: Buffer, facts: Omit<ForwardedFacts, 'token'>, site: LegacySite,
  ): Promise<void> {
    const socketPath = await this.#socketPath()
    const refuse = (reason: string): void => {
      const body = JSON.stringify({ error: `Plugin ${facts.plugin} is unavailable`,
        code: 'WIKIFARM_ERR_PLUGIN_UNAVAILABLE', reason })
      socket.end(`HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
    }
    if (socketPath === null) return refuse(`the legacy child is ${this.#state}`)
    this.#note(site)
    const outgoing = httpRequest({
      socketPath, method: req.method, path: req.url, headers: this.#headers(req, facts, true), agent: false,
    })
    const call = { fail: (): void => { socket.destroy() } }
    this.#inFlight.add(call)
    this.#upgraded.add(socket)
    socket.once('close', () => {
      this.#inFlight.delete(call)
      this.#upgraded.delete(socket)
    })
    outgoing.on('upgrade', (answer, upstream, upstreamHead) => {
      socket.write(head101(answer))
      if (upstreamHead.length > 0) socket.write(upstreamHead)
      if (head.length > 0) upstream.write(head)
      upstream.pipe(socket)
      socket.pipe(upstream)
      upstream.on('error', () => socket.destroy())
      socket.on('error', () => upstream.destroy())
      upstream.on('close', () => socket.destroy())
      socket.on('close', () => upstream.destroy())
    })
    outgoing.on('response', (answer) => {
      // A refusal: its body, of a declared length, then the connection ends.
      const lines = [`HTTP/1.1 ${answer.statusCode ?? 502} ${answer.statusMessage ?? ''}`]
      const headers = endToEnd(answer.rawHeaders)
      for (let i = 0; i < headers.length; i += 2) lines.push(`${headers[i]}: ${headers[i + 1]}`)
      const chunks: Buffer[] = []
      answer.on('data', (chunk: Buffer) => chunks.push(chunk))
      answer.on('end', () => socket.end(`${lines.join('\r\n')}\r\nconnection: close\r\n\r\n${Buffer.concat(chunks)}`))
    })
    outgoing.on('error', (err) => refuse(`the legacy child could not be reached: ${err.message}`))
    outgoing.end()
  }

  #removeFolder(): void {
    if (this.#folder) rmSync(this.#folder, { recursive: true, force: true })
    this.#folder = null
  }

  /** Ends every visitor's socket upgraded into a legacy plugin (before the farm's server closes). */
  endSockets(): void {
    for (const socket of this.#upgraded) socket.destroy()
    this.#upgraded.clear()
  }

  /** Per-site instances kept per plugin, in this child and the next ones. */
  setMaxInstances(limit: number): void {
    this.#maxInstances = limit
    this.#post({ t: 'max-instances', limit })
  }

  /** Ends the child: its plugins' sockets and instances go with it. */
  async close(): Promise<void> {
    this.#closing = true
    this.#agent.destroy()
    if (this.#restartTimer) clearTimeout(this.#restartTimer)
    const child = this.#child
    if (!child || child.exitCode !== null) {
      this.#removeFolder()
      return
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000)
    await exited
    clearTimeout(timer)
  }
}

/** An HTTP response's status line and headers, as they came, for a raw socket. */
function head101(answer: IncomingMessage): string {
  const lines = [`HTTP/1.1 ${answer.statusCode ?? 502} ${answer.statusMessage ?? ''}`]
  const raw = answer.rawHeaders
  for (let i = 0; i < raw.length; i += 2) lines.push(`${raw[i]}: ${raw[i + 1]}`)
  return `${lines.join('\r\n')}\r\n\r\n`
}


function endToEnd(raw: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (!HOP_BY_HOP.has(String(raw[i]).toLowerCase())) out.push(raw[i] as string, raw[i + 1] as string)
  }
  return out
}
