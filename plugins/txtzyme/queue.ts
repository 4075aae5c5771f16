// The line queue in front of the one device: one line on the wire at a time, round-robin between
// sessions, capped per session and overall. Each line goes out with a sentinel `_<nonce>_`
// appended; what the device prints up to the line `<nonce>` is that line's output, answered to
// its requester only (observers get every line, labelled). A timeout answers the requester but
// the device stays blocked until the sentinel comes back, so later replies stay in step.
import { CodedError } from './coded-error.js'
import { randomBytes } from 'node:crypto'

export type TxtzymeErrorCode =
  | 'TXTZYME_SESSION_QUEUE_FULL'
  | 'TXTZYME_QUEUE_FULL'
  | 'TXTZYME_TIMEOUT'
  | 'TXTZYME_DEVICE_LOST'
  | 'TXTZYME_CANCELLED'
  | 'TXTZYME_CLOSED'
  | 'TXTZYME_NOT_READY'
  | 'TXTZYME_OUTPUT_TOO_LARGE'

export class TxtzymeError extends CodedError<TxtzymeErrorCode> {}

/** Where a line came from, as observers see it: a site and an opaque session label. */
export interface Origin {
  site: string
  label: string
}

/** One line's result, as observers receive it. */
export interface LineRecord {
  origin: Origin
  line: string
  lines: string[]
  /** The requester was already answered with a timeout. */
  timedOut: boolean
  /** Milliseconds on the device, from write to sentinel. */
  ms: number
  /** The output passed maxOutputBytes: `lines` holds only its beginning. */
  truncated: boolean
}

export interface QueueOptions {
  /** Lines one session may have waiting (not counting the one on the device). */
  perSession: number
  /** Lines all sessions together may have waiting. */
  global: number
  /** Default milliseconds from sending a line to its sentinel before the requester gets a timeout. */
  timeoutMs: number
  /** Writes bytes to the device. */
  write: (text: string) => void
  /** A fresh sentinel text: printable, without `_`, `{` or `}`. */
  nonce?: () => string
  /**
   * Bytes of output kept for one line (default 1 MiB). A `60000{_…_}` line prints 54 MB on the
   * real firmware: past the cap the rest is dropped and the requester gets
   * TXTZYME_OUTPUT_TOO_LARGE when the sentinel comes, so memory stays bounded and replies in step.
   */
  maxOutputBytes?: number
}

interface Entry {
  key: string
  origin: Origin
  line: string
  timeoutMs: number
  resolve: (lines: string[]) => void
  reject: (error: TxtzymeError) => void
  answered: boolean
  timedOut: boolean
  /** Who inside the session asked (a connection id), for cancel(). */
  tag: string | undefined
}

interface InFlight {
  entry: Entry
  nonce: string
  lines: string[]
  bytes: number
  overflow: boolean
  sentAt: number
  timer: NodeJS.Timeout | null
}

export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024

let counter = 0
const SALT = randomBytes(4).toString('hex')
/** `tz<salt><counter>`: unique per process, short enough for SENTINEL_ROOM. */
export function defaultNonce(): string {
  counter = (counter + 1) % 0x7fffffff
  return `tz${SALT}${counter.toString(36)}`
}

export class LineQueue {
  private readonly options: QueueOptions
  private readonly nonce: () => string
  /** Waiting lines per session key, and the round-robin order of keys with waiting lines. */
  private readonly waiting = new Map<string, Entry[]>()
  private order: string[] = []
  private total = 0
  private current: InFlight | null = null
  private open = false
  private readonly listeners = new Set<(record: LineRecord) => void>()
  /** Device lines that arrived while no line was on the device (garbage, late echoes). */
  stray = 0
  sent = 0
  completed = 0

  constructor(options: QueueOptions) {
    this.options = options
    this.nonce = options.nonce ?? defaultNonce
  }

  get queued(): number { return this.total }
  get busy(): boolean { return this.current !== null }
  /** Milliseconds the line on the device has been running, or null. */
  currentAge(): number | null { return this.current ? Date.now() - this.current.sentAt : null }

  /** Every completed line, labelled: for observers. Returns the unsubscribe function. */
  onLine(listener: (record: LineRecord) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** Queues a validated line for a session; resolves to its output lines. */
  submit(key: string, origin: Origin, line: string, timeoutMs?: number, tag?: string): Promise<string[]> {
    const mine = this.waiting.get(key)
    if ((mine?.length ?? 0) >= this.options.perSession) {
      return Promise.reject(
        new TxtzymeError(
          'TXTZYME_SESSION_QUEUE_FULL',
          `you already have ${this.options.perSession} lines waiting for the device: wait for their output before ` +
            `sending more`,
        ),
      )
    }
    if (this.total >= this.options.global) {
      return Promise.reject(new TxtzymeError('TXTZYME_QUEUE_FULL',
        `the device has ${this.options.global} lines waiting from all clients: try again shortly`))
    }
    return new Promise<string[]>((resolve, reject) => {
      const entry: Entry = {
        key, origin, line, timeoutMs: Math.min(timeoutMs ?? this.options.timeoutMs, this.options.timeoutMs),
        resolve, reject, answered: false, timedOut: false, tag,
      }
      if (mine) mine.push(entry)
      else {
        this.waiting.set(key, [entry])
        this.order.push(key)
      }
      this.total++
      this.pump()
    })
  }

  /** Opens or holds the gate: lines are sent only while the device is ready. */
  setOpen(open: boolean): void {
    this.open = open
    if (open) this.pump()
  }

  /** A line the device printed, without its line ending. */
  deviceLine(text: string): void {
    const current = this.current
    if (!current) {
      this.stray++
      return
    }
    if (text.endsWith(current.nonce)) {
      // Output without a line ending just before the sentinel still belongs to this line.
      const before = text.slice(0, text.length - current.nonce.length)
      if (before.length > 0) this.keep(current, before)
      this.finish(current)
      return
    }
    this.keep(current, text)
  }

  private keep(current: InFlight, text: string): void {
    if (current.overflow) return
    current.bytes += text.length + 1
    if (current.bytes > (this.options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES)) {
      current.overflow = true
      return
    }
    current.lines.push(text)
  }

  /**
   * Drops a session's waiting lines, or only those tagged `tag` (one connection of the session
   * went away); the line already on the device runs out and its output goes to observers only.
   */
  cancel(key: string, tag?: string): void {
    const mine = this.waiting.get(key)
    if (mine) {
      const dropped = mine.filter((e) => tag === undefined || e.tag === tag)
      const kept = mine.filter((e) => !(tag === undefined || e.tag === tag))
      if (kept.length > 0) this.waiting.set(key, kept)
      else {
        this.waiting.delete(key)
        this.order = this.order.filter((k) => k !== key)
      }
      this.total -= dropped.length
      for (const entry of dropped) this.answer(entry, new TxtzymeError('TXTZYME_CANCELLED', 'the client went away'))
    }
    const current = this.current
    if (current && current.entry.key === key && (tag === undefined || current.entry.tag === tag)) {
      this.answer(current.entry, new TxtzymeError('TXTZYME_CANCELLED', 'the client went away'))
    }
  }

  /** Fails the line on the device and every waiting line (device lost, plugin closing). */
  failAll(error: TxtzymeError): void {
    const current = this.current
    this.current = null
    if (current) {
      if (current.timer) clearTimeout(current.timer)
      this.answer(current.entry, error)
    }
    const all = [...this.waiting.values()].flat()
    this.waiting.clear()
    this.order = []
    this.total = 0
    for (const entry of all) this.answer(entry, error)
  }

  /** Fails only the line on the device (its sentinel will never come: the device was reset). */
  failCurrent(error: TxtzymeError): void {
    const current = this.current
    if (!current) return
    this.current = null
    if (current.timer) clearTimeout(current.timer)
    this.answer(current.entry, error)
  }

  private answer(entry: Entry, result: string[] | TxtzymeError): void {
    if (entry.answered) return
    entry.answered = true
    if (result instanceof TxtzymeError) entry.reject(result)
    else entry.resolve(result)
  }

  private finish(current: InFlight): void {
    this.current = null
    if (current.timer) clearTimeout(current.timer)
    this.completed++
    const timedOut = current.entry.timedOut
    const max = this.options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES
    this.answer(
      current.entry,
      current.overflow
        ? new TxtzymeError(
            'TXTZYME_OUTPUT_TOO_LARGE',
            `the line printed more than ${max} bytes: its output was dropped (the device stayed in step)`,
          )
        : current.lines,
    )
    const record: LineRecord = {
      origin: current.entry.origin,
      line: current.entry.line,
      lines: current.lines,
      timedOut,
      ms: Date.now() - current.sentAt,
      truncated: current.overflow,
    }
    for (const listener of this.listeners) {
      try { listener(record) } catch { /* an observer's failure is its own */ }
    }
    this.pump()
  }

  private pump(): void {
    if (!this.open || this.current) return
    const key = this.order.shift()
    if (key === undefined) return
    const mine = this.waiting.get(key) as Entry[]
    const entry = mine.shift() as Entry
    this.total--
    if (mine.length > 0) this.order.push(key)
    else this.waiting.delete(key)
    const nonce = this.nonce()
    const current: InFlight = { entry, nonce, lines: [], bytes: 0, overflow: false, sentAt: Date.now(), timer: null }
    current.timer = setTimeout(() => {
      current.timer = null
      entry.timedOut = !entry.answered
      this.answer(entry, new TxtzymeError('TXTZYME_TIMEOUT',
        `no end of output within ${entry.timeoutMs} ms; the device finishes the line before the next one is sent`))
    }, entry.timeoutMs)
    this.current = current
    this.sent++
    this.options.write(`${entry.line}_${nonce}_\n`)
  }
}
