// The one Txtzyme device of the process: discovery, one serialport 13 connection with a line
// parser, a sync on every open, and reconnection with capped exponential backoff after loss.
// States: absent (nothing to open), opening, syncing, ready (lines flow), lost (just went away).
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { SerialPort } from 'serialport'
import { DeviceLineSplitter } from './line-splitter.js'
import { TxtzymeError, defaultNonce, type LineQueue, type Origin } from './queue.js'

export type DeviceState = 'absent' | 'opening' | 'syncing' | 'ready' | 'lost'

export const TEENSY_VENDOR = '16c0'
export const TXTZYME_PRODUCT = '047a'

export interface Discovery {
  path: string | null
  /** Where we looked, for the unavailable reason. */
  looked: string[]
}

/** A configured path, else SerialPort.list() for 16C0:047A, else /dev/ttyACM* (list() needs udev). */
export async function discover(configured: string | undefined, devDir = '/dev'): Promise<Discovery> {
  if (configured) return { path: configured, looked: [configured] }
  const looked = [
    `SerialPort.list() for USB ${TEENSY_VENDOR.toUpperCase()}:${TXTZYME_PRODUCT.toUpperCase()}`,
    `${join(devDir, 'ttyACM*')}`,
  ]
  try {
    const ports = await SerialPort.list()
    const teensy = ports.find(
      (p) => p.vendorId?.toLowerCase() === TEENSY_VENDOR && p.productId?.toLowerCase() === TXTZYME_PRODUCT,
    )
    if (teensy) return { path: teensy.path, looked }
  } catch { /* no udev, no sysfs: scan below */ }
  try {
    const acm = (await readdir(devDir)).filter((name) => /^ttyACM\d+$/.test(name)).sort()
    if (acm[0]) return { path: join(devDir, acm[0]), looked }
  } catch { /* no such folder */ }
  return { path: null, looked }
}

export interface DeviceOptions {
  /** Configured tty path; discovery when absent. */
  path?: string
  /** Folder scanned for ttyACM* (tests point it elsewhere). */
  devDir?: string
  baudRate?: number
  /** How long a sync (sentinel, then `v`) may take before the open counts as failed. */
  syncTimeoutMs: number
  /** Reconnect backoff: first delay, doubled each failure, capped. */
  backoffMinMs: number
  backoffMaxMs: number
  /** A line on the device longer than this means the device hangs: it is reopened. */
  stallMs: number
  /**
   * An empty line is written this often while the port is open: the firmware ignores empty
   * lines (they queue behind a running line), and a write is what reveals a vanished tty
   * (serialport reports no hangup on reads of a pty). It counts in the pipelining window
   * (LineQueue.heartbeat).
   */
  heartbeatMs: number
}

export interface DeviceStatus {
  state: DeviceState
  path: string | null
  chip: string | null
  reason: string | null
  since: string
  reconnects: number
}

type Listener = (status: DeviceStatus) => void

export class TxtzymeDevice {
  readonly queue: LineQueue
  private readonly options: DeviceOptions
  private port: SerialPort | null = null
  private state: DeviceState = 'absent'
  private path: string | null
  private chip: string | null = null
  private reason: string | null = null
  private since = new Date().toISOString()
  private reconnects = 0
  private failures = 0
  private retryTimer: NodeJS.Timeout | null = null
  private stallTimer: NodeJS.Timeout | null = null
  private closed = false
  private readonly listeners = new Set<Listener>()
  /** While syncing, device lines go here instead of to the queue. */
  private syncing: ((line: string) => void) | null = null
  /** While connecting, a port error ends the sync at once. */
  private syncFail: ((err: Error) => void) | null = null

  constructor(queue: LineQueue, options: DeviceOptions) {
    this.queue = queue
    this.options = options
    this.path = options.path ?? null
  }

  /** Queues a validated line; refused at once unless the device is ready. */
  submit(key: string, origin: Origin, line: string, timeoutMs?: number, tag?: string): Promise<string[]> {
    if (this.state !== 'ready') {
      return Promise.reject(new TxtzymeError('TXTZYME_NOT_READY',
        `the Txtzyme device is ${this.state}${this.reason ? ` (${this.reason})` : ''}: try again once it is ready`))
    }
    return this.queue.submit(key, origin, line, timeoutMs, tag)
  }

  /** Writes to the open port (the queue's write); dropped while there is none. */
  write(text: string): void {
    this.port?.write(text)
  }

  status(): DeviceStatus {
    return {
      state: this.state,
      path: this.path,
      chip: this.chip,
      reason: this.reason,
      since: this.since,
      reconnects: this.reconnects,
    }
  }

  onState(listener: Listener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  private setState(state: DeviceState, reason: string | null = null): void {
    if (this.state === state && this.reason === reason) return
    this.state = state
    this.reason = reason
    this.since = new Date().toISOString()
    this.queue.setOpen(state === 'ready')
    const status = this.status()
    for (const listener of this.listeners) {
      try { listener(status) } catch { /* a listener's failure is its own */ }
    }
  }

  /** Opens and syncs once; rejects with the reason when that fails (no retry here). */
  async start(): Promise<void> {
    await this.connect()
    this.stallTimer = setInterval(() => this.tick(), Math.max(20, this.options.heartbeatMs))
    this.stallTimer.unref()
  }

  private tick(): void {
    // Through the queue: behind a running line, the empty line takes room in the device's input buffer.
    if (this.state === 'ready' && this.port?.isOpen) this.queue.heartbeat()
    const age = this.queue.currentAge()
    if (this.state === 'ready' && age !== null && age > this.options.stallMs) {
      this.lose(`no end of output for ${age} ms: the device is reopened and resynced`)
    }
  }

  private async connect(): Promise<void> {
    let path = this.options.path ?? null
    if (!path) {
      const found = await discover(undefined, this.options.devDir)
      path = found.path
      if (!path) throw new Error(`no Txtzyme device attached (looked at ${found.looked.join(', ')})`)
    }
    this.path = path
    this.setState('opening')
    const port = new SerialPort({ path, baudRate: this.options.baudRate ?? 9600, autoOpen: false, hupcl: false })
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())))
    if (this.closed) {
      port.close()
      throw new Error('closed')
    }
    this.port = port
    // The firmware runs only while DTR is held.
    await new Promise<void>((resolve) => port.set({ dtr: true }, () => resolve()))
    // Bounded and linear, whatever the device prints (see line-splitter.ts).
    const splitter = new DeviceLineSplitter()
    port.on('data', (chunk: Buffer) => {
      for (const raw of splitter.push(chunk)) {
        const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
        if (this.syncing) this.syncing(line)
        else if (this.state === 'ready') this.queue.deviceLine(line)
      }
    })
    const gone = (err: Error): void => {
      if (this.port !== port) return
      if (this.state === 'ready') this.lose(err.message)
      else this.syncFail?.(err)
    }
    port.on('error', gone)
    port.on('close', (err: Error | null) => gone(err ?? new Error('the port closed')))
    this.setState('syncing')
    try {
      await Promise.race([
        this.sync(port),
        new Promise<never>((_, reject) => { this.syncFail = reject }),
      ])
    } catch (err) {
      this.syncing = null
      this.syncFail = null
      port.removeAllListeners('close')
      port.on('error', () => {})
      this.port = null
      if (port.isOpen) port.close()
      throw err
    }
    this.syncFail = null
    this.failures = 0
    this.setState('ready')
  }

  /** Ends any partial line, waits for a sentinel (discarding older output), then asks `v`. */
  private async sync(port: SerialPort): Promise<void> {
    const ask = (line: string): Promise<string[]> => new Promise((resolve, reject) => {
      const nonce = defaultNonce()
      const lines: string[] = []
      const timer = setTimeout(() => {
        this.syncing = null
        reject(
          new Error(
            `the device did not answer a sync within ${this.options.syncTimeoutMs} ms (is it running Txtzyme, with ` +
              `DTR held?)`,
          ),
        )
      }, this.options.syncTimeoutMs)
      this.syncing = (text) => {
        if (text.endsWith(nonce)) {
          clearTimeout(timer)
          this.syncing = null
          const before = text.slice(0, -nonce.length)
          if (before) lines.push(before)
          resolve(lines)
        } else lines.push(text)
      }
      port.write(`${line}_${nonce}_\n`)
    })
    port.write('\n')
    await ask('')
    const chip = await ask('v')
    this.chip = chip.join(' ').trim() || null
  }

  /** The device went away (or hangs): fail every line, then reconnect with backoff. */
  private lose(why: string): void {
    const port = this.port
    if (!port || this.closed) return
    this.port = null
    this.syncing = null
    port.removeAllListeners('close')
    port.on('error', () => {})
    if (port.isOpen) port.close(() => {})
    const reason =
      `the Txtzyme device went away (${why}): ` +
      'queued lines were dropped and the device state (pins, x) must be assumed lost'
    this.setState('lost', reason)
    this.queue.failAll(new TxtzymeError('TXTZYME_DEVICE_LOST', reason))
    this.scheduleReconnect()
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return
    const delay = Math.min(this.options.backoffMaxMs, this.options.backoffMinMs * 2 ** Math.min(this.failures, 20))
    this.failures++
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      this.connect().then(() => { this.reconnects++ }, (err: Error) => {
        if (this.closed) return
        this.setState('absent', err.message)
        this.scheduleReconnect()
      })
    }, delay)
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.retryTimer) clearTimeout(this.retryTimer)
    if (this.stallTimer) clearInterval(this.stallTimer)
    this.retryTimer = null
    this.queue.failAll(new TxtzymeError('TXTZYME_CLOSED', 'the Txtzyme plugin is shutting down'))
    const port = this.port
    this.port = null
    this.syncing = null
    if (port?.isOpen) {
      port.removeAllListeners('close')
      port.on('error', () => {})
      await new Promise<void>((resolve) => port.close(() => resolve()))
    }
    this.setState('absent', 'closed')
  }
}
