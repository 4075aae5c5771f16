// Txtzyme: one USB Teensy (or the simulator on a pty) shared by every client on every site.
// Lines are validated, queued round-robin between sessions, sent one at a time with a sentinel,
// and each line's output goes back to the session that sent it (observers get every line,
// labelled). See docs/txtzyme.md.
import { createHmac, randomBytes } from 'node:crypto'
import { access, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Type } from 'typebox'
import {
  PluginHttpError, PluginUnavailable, SUBPROTOCOL_V1, definePlugin, reply, route, socket,
  type Connection, type Envelope, type JsonValue, type PluginInstance, type RequestContext,
} from 'wikifarm/plugin'
import { TxtzymeDevice, discover, type DeviceStatus } from './device.js'
import { MAX_LINE, validateLine } from './line.js'
import { CodedError } from './coded-error.js'
import { haveSocat, openPtyPair, serveSimulator } from './pty.js'
import { LineQueue, WINDOW_BYTES, WINDOW_LINES, type LineRecord, type Origin } from './queue.js'

const Options = Type.Object({
  /** The tty to open; discovery (16C0:047A, then /dev/ttyACM*) when absent. */
  device: Type.Optional(Type.String({ minLength: 1 })),
  /** Folder scanned for ttyACM* when discovering. */
  devDir: Type.String({ default: '/dev' }),
  /** Longest wait, from sending a line, before its requester gets a timeout. */
  timeoutMs: Type.Integer({ minimum: 10, maximum: 600_000, default: 10_000 }),
  syncTimeoutMs: Type.Integer({ minimum: 50, maximum: 60_000, default: 3000 }),
  perSessionCap: Type.Integer({ minimum: 1, maximum: 10_000, default: 100 }),
  globalCap: Type.Integer({ minimum: 1, maximum: 100_000, default: 2000 }),
  backoffMinMs: Type.Integer({ minimum: 10, maximum: 60_000, default: 500 }),
  backoffMaxMs: Type.Integer({ minimum: 10, maximum: 600_000, default: 30_000 }),
  heartbeatMs: Type.Integer({ minimum: 20, maximum: 60_000, default: 250 }),
  stallMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 120_000 }),
  /** Output kept for one line; past it the requester gets TXTZYME_OUTPUT_TOO_LARGE. */
  maxOutputBytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024, default: 1024 * 1024 }),
  /** Pipelining: bytes sent ahead of the running line, and lines on the wire (1: one at a time). */
  windowBytes: Type.Integer({ minimum: 0, maximum: 65_536, default: WINDOW_BYTES }),
  windowLines: Type.Integer({ minimum: 1, maximum: 64, default: WINDOW_LINES }),
  /** Let every visitor (not only site owners) drive the hardware and observe. */
  openToVisitors: Type.Boolean({ default: false }),
  /**
   * When no device is attached, run the built-in simulator at the far end of a pty pair
   * (made with socat) and use it: the demo farm's default, never a production one.
   */
  simulator: Type.Boolean({ default: false }),
})

const RunData = Type.Union([
  Type.String({ maxLength: 4096 }),
  Type.Object(
    { line: Type.String({ maxLength: 4096 }), timeoutMs: Type.Optional(Type.Integer({ minimum: 1 })) },
    { additionalProperties: false },
  ),
])

/** What a client may send on /plugin/txtzyme/v1. */
const Message = Type.Union([
  Type.Object({ type: Type.Literal('run'), id: Type.String({ maxLength: 100 }), data: RunData }),
  Type.Object({
    type: Type.Literal('observe'),
    id: Type.Optional(Type.String({ maxLength: 100 })),
    data: Type.Optional(Type.Boolean()),
  }),
  Type.Object({ type: Type.Literal('status'), id: Type.Optional(Type.String({ maxLength: 100 })) }),
])

const NOT_ALLOWED = 'only the site owner may drive the Txtzyme device (the operator can open it to visitors)'

interface Who {
  key: string
  origin: Origin
}

/** HTTP status for a plugin error code. */
function statusOf(code: string): number {
  switch (code) {
    case 'TXTZYME_SESSION_QUEUE_FULL': case 'TXTZYME_QUEUE_FULL': return 429
    case 'TXTZYME_TIMEOUT': return 504
    case 'TXTZYME_NOT_READY': case 'TXTZYME_DEVICE_LOST': case 'TXTZYME_CLOSED': return 503
    case 'TXTZYME_CANCELLED': return 409
    case 'TXTZYME_OUTPUT_TOO_LARGE': case 'TXTZYME_LINE_LOST': return 502
    default: return 400
  }
}

/** An error as the kernel words its own: `{ error, code }`, in that order, on REST and sockets. */
function errorData(err: unknown): { error: string; code: string } {
  if (err instanceof CodedError) return { error: err.message, code: err.code }
  return { error: 'the line could not be run', code: 'TXTZYME_FAILED' }
}

// Unavailable (no device, no socat): the kernel launches it again after 2 s, doubling up to its
// cap, so a device plugged in later is found without a restart (docs/txtzyme.md).
const AGAIN = { retryAfterMs: 2000 }

/** The simulator on a fresh pty pair in a temporary folder; socat must be installed. */
async function startSimulator(): Promise<{ devicePath: string; close(): Promise<void> }> {
  if (!(await haveSocat()))
    throw new PluginUnavailable(
      'no Txtzyme device attached, and the simulator needs socat (apt-get install socat)',
      AGAIN,
    )
  const dir = await mkdtemp(join(tmpdir(), 'wikifarm-txtzyme-'))
  const pair = await openPtyPair(join(dir, 'device'), join(dir, 'simulator'))
  const served = await serveSimulator(pair.simulatorPath)
  return {
    devicePath: pair.devicePath,
    async close() {
      await served.close()
      await pair.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

export default definePlugin({
  name: 'txtzyme',
  trust: 'farm',
  // serialport's native binding aborts the whole process (a V8 locking failure) when used from
  // a worker thread: in-process or a child process only (docs/txtzyme.md).
  isolationModes: ['none', 'process'],
  // One device, attached to one machine: in a farm of many nodes, the node that has it runs the
  // plugin and the others forward to it (docs/scale-out.md, Plugin placement).
  placement: 'one-node',
  options: Options,

  async launch(kernel, options): Promise<PluginInstance> {
    const found = await discover(options.device, options.devDir)
    let simulated: { close(): Promise<void> } | null = null
    if (!found.path && options.simulator) {
      const sim = await startSimulator()
      simulated = sim
      found.path = sim.devicePath
      kernel.log.warn(
        `no Txtzyme device attached (looked at ${found.looked.join(', ')}): using the simulator (no hardware) at ` +
          `${sim.devicePath}`,
      )
    }
    if (!found.path) {
      throw new PluginUnavailable(`no Txtzyme device attached (looked at ${found.looked.join(', ')})`, AGAIN)
    }
    try {
      await access(found.path)
    } catch {
      throw new PluginUnavailable(
        `no Txtzyme device attached at ${found.path} (the configured device path does not exist)`,
        AGAIN,
      )
    }
    let device: TxtzymeDevice | null = null
    const queue = new LineQueue({
      perSession: options.perSessionCap, global: options.globalCap, timeoutMs: options.timeoutMs,
      maxOutputBytes: options.maxOutputBytes, windowBytes: options.windowBytes, windowLines: options.windowLines,
      write: (text) => device?.write(text),
    })
    device = new TxtzymeDevice(queue, {
      path: found.path, devDir: options.devDir, syncTimeoutMs: options.syncTimeoutMs,
      backoffMinMs: options.backoffMinMs, backoffMaxMs: Math.max(options.backoffMinMs, options.backoffMaxMs),
      stallMs: options.stallMs, heartbeatMs: options.heartbeatMs,
    })
    const dev = device
    try {
      await dev.start()
    } catch (err) {
      await dev.close()
      await simulated?.close()
      throw new PluginUnavailable(`the Txtzyme device at ${found.path} did not open: ${(err as Error).message}`, AGAIN)
    }
    kernel.log.info('Txtzyme device ready', { path: found.path, chip: dev.status().chip })

    // Observers see a label per visitor and site, never the session id itself.
    const labelKey = randomBytes(16)
    const who = (ctx: RequestContext): Who => {
      const key = `${ctx.site.name}\n${ctx.session.id}`
      const label = `v-${createHmac('sha256', labelKey).update(key).digest('hex').slice(0, 10)}`
      return { key, origin: { site: ctx.site.name, label } }
    }
    const mayRun = (ctx: RequestContext): boolean =>
      options.openToVisitors || ctx.session.isOwner || ctx.session.isAdmin

    const jsonClients = new Set<Connection<Envelope>>()
    const observers = new Map<Connection<Envelope>, () => void>()
    const status = (): DeviceStatus & {
      queued: number
      inFlight: number
      busyMs: number
      sent: number
      completed: number
      maxLine: number
      openToVisitors: boolean
      simulated: boolean
    } => ({
      ...dev.status(),
      queued: queue.queued,
      inFlight: queue.inFlight,
      busyMs: Math.round(queue.busyMs()),
      sent: queue.sent,
      completed: queue.completed,
      maxLine: MAX_LINE,
      openToVisitors: options.openToVisitors,
      simulated: simulated !== null,
    })
    const stateData = (s: DeviceStatus): JsonValue => ({
      state: s.state,
      path: s.path,
      chip: s.chip,
      reason: s.reason,
      since: s.since,
    })
    // Each change of the device's availability is logged once: gone (warn) and back (info).
    // Between them the reconnect attempts alternate opening and absent at every backoff, so
    // those states go to debug only.
    let wasReady = true
    const logState = (s: DeviceStatus): void => {
      const fields = { path: s.path, ...(s.reason ? { reason: s.reason } : {}) }
      if (s.state === 'ready') {
        if (!wasReady) kernel.log.info('Txtzyme device found again and ready', { ...fields, chip: s.chip })
        wasReady = true
      } else if (wasReady && (s.state === 'lost' || s.state === 'absent')) {
        kernel.log.warn('Txtzyme device unplugged or not answering: reconnecting', fields)
        wasReady = false
      } else {
        kernel.log.debug(`Txtzyme device ${s.state}`, fields)
      }
    }
    const offState = dev.onState((s) => {
      logState(s)
      for (const conn of jsonClients) conn.send({ type: 'state', data: stateData(s) })
    })

    /** Validates and queues one line for a context; resolves to its output lines. */
    const run = (ctx: RequestContext, raw: string, timeoutMs?: number, tag?: string): Promise<string[]> => {
      const line = validateLine(raw)
      const { key, origin } = who(ctx)
      return dev.submit(key, origin, line, timeoutMs, tag)
    }

    return {
      routes: [
        route({
          method: 'GET', url: '/status',
          handler: async (_request, ctx) => ({ ...status(), mayRun: mayRun(ctx) }),
        }),
        route({
          method: 'POST', url: '/run',
          schema: { body: RunData },
          handler: async (request, ctx) => {
            if (!mayRun(ctx)) throw new PluginHttpError(403, 'TXTZYME_NOT_OWNER', NOT_ALLOWED)
            const body = request.body
            const raw = typeof body === 'string' ? body : body.line
            const timeoutMs = typeof body === 'string' ? undefined : body.timeoutMs
            try {
              const lines = await run(ctx, raw, timeoutMs)
              const { origin } = who(ctx)
              return { line: validateLine(raw), lines, site: origin.site, session: origin.label }
            } catch (err) {
              const data = errorData(err)
              return reply({ status: statusOf(data.code), body: data })
            }
          },
        }),
      ],

      sockets: [
        // The legacy path of the federated-wiki Txtzyme client: plain text lines both ways.
        socket({
          url: '/', codec: 'text',
          onConnect: (conn) => {
            if (!mayRun(conn)) {
              conn.send(`error: ${NOT_ALLOWED}`)
              conn.close(4003, 'only the site owner may drive the Txtzyme device')
            }
          },
          onMessage: async (conn, message) => {
            const lines = message.split(/\r\n|\r|\n/).filter((l) => l.length > 0)
            // Queue every line of the frame at once (in order), then answer each as it completes.
            const pending = lines.map((l) => {
              try {
                return run(conn, l, undefined, conn.id)
              } catch (err) {
                return Promise.reject(err)
              }
            })
            for (const p of pending) p.catch(() => {})
            void (async () => {
              for (const p of pending) {
                try {
                  for (const out of await p) conn.send(out)
                } catch (err) {
                  if (!conn.closed) conn.send(`error: ${errorData(err).error}`)
                }
              }
            })()
          },
          onClose: (conn) => { dev.queue.cancel(who(conn).key, conn.id) },
        }),

        // The JSON envelope: run → output | error, state pushed, observe to see every line.
        // Clients offering wikifarm.v1 on /plugin/txtzyme get it; /v1 serves clients that
        // cannot offer a subprotocol.
        ...['/', '/v1'].map((url) => socket({
          url, codec: 'json', message: Message, ...(url === '/' ? { protocol: SUBPROTOCOL_V1 } : {}),
          onConnect: (conn) => {
            jsonClients.add(conn)
            conn.send({ type: 'state', data: stateData(dev.status()) })
          },
          onMessage: (conn, message) => {
            if (message.type === 'status') {
              conn.send({ type: 'status', id: message.id, data: { ...status(), mayRun: mayRun(conn) } })
              return
            }
            if (!mayRun(conn)) {
              conn.send({ type: 'error', id: message.id, data: { error: NOT_ALLOWED, code: 'TXTZYME_NOT_OWNER' } })
              return
            }
            if (message.type === 'observe') {
              const on = message.data ?? true
              observers.get(conn)?.()
              observers.delete(conn)
              if (on) {
                observers.set(conn, dev.queue.onLine((record: LineRecord) => {
                  conn.send({
                    type: 'line',
                    data: {
                      site: record.origin.site,
                      session: record.origin.label,
                      line: record.line,
                      lines: record.lines,
                      timedOut: record.timedOut,
                      truncated: record.truncated,
                    },
                  })
                }))
              }
              conn.send({ type: 'observing', id: message.id, data: on })
              return
            }
            const id = message.id
            const raw = typeof message.data === 'string' ? message.data : message.data.line
            const timeoutMs = typeof message.data === 'string' ? undefined : message.data.timeoutMs
            // Not awaited: the next frame may queue its line while this one runs.
            let result: Promise<string[]>
            try {
              result = run(conn, raw, timeoutMs, conn.id)
            } catch (err) {
              result = Promise.reject(err)
            }
            result.then(
              (lines) => { conn.send({ type: 'output', id, data: { lines } }) },
              (err: unknown) => { if (!conn.closed) conn.send({ type: 'error', id, data: errorData(err) }) },
            )
          },
          onClose: (conn) => {
            jsonClients.delete(conn)
            observers.get(conn)?.()
            observers.delete(conn)
            dev.queue.cancel(who(conn).key, conn.id)
          },
        })),
      ],

      async close() {
        offState()
        for (const off of observers.values()) off()
        observers.clear()
        jsonClients.clear()
        await dev.close()
        await simulated?.close()
      },
    }
  },
})
