// The line queue in front of the one device: round-robin between sessions, capped per session and
// overall. Each line goes out with a sentinel `_<nonce>_` appended; what the device prints up to
// the line `<nonce>` is that line's output, answered to its requester only (observers get every
// line, labelled). Lines are pipelined: the host sends ahead of the sentinels, up to a window that
// the firmware's input buffer holds without loss (WINDOW_BYTES, WINDOW_LINES; docs/txtzyme.md), so
// the device never waits for the round trip. A timeout answers its requester only, and nothing more
// is sent until that line's sentinel is back, so later replies stay in step.
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
  | 'TXTZYME_LINE_LOST'

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
  /**
   * Bytes the host may have written beyond the line the device is running (lines sent ahead and
   * heartbeats): what the firmware's input buffer must hold while a line runs (WINDOW_BYTES).
   */
  windowBytes?: number
  /** Lines on the wire at once, the running one included (WINDOW_LINES; 1 = no pipelining). */
  windowLines?: number
}

/**
 * The window, from the firmware (docs/txtzyme.md, "Pipelining"): while parse() runs a line, what
 * the host sends next waits in the USB OUT endpoint's buffer, CDC_RX_SIZE x 2 banks in PJRC's
 * usb_serial.c that Txtzyme builds with: 2 x 64 = 128 bytes on the ATmega32U4 (Teensy 2.0) and
 * AT90USB646/1286, 2 x 32 = 64 on the AT90USB162 (Teensy 1.0), and 64 in an Arduino's serial
 * ring (Arduinozyme, no flow control). USB NAKs hold more back on a Teensy, but a serial bridge
 * drops it, so the window is the smallest of these: 64 bytes beyond the running line.
 */
export const WINDOW_BYTES = 64
/**
 * Lines on the wire at once, the running one included. 64 bytes hold 2 to 4 short lines (a line on
 * the wire is its text, `_`, an 11-16 character nonce and `_\n`); the cap bounds how many lines one
 * fault (an unplug, a hang) fails beyond the running one, and how many lines already committed a
 * newly arriving session waits behind.
 */
export const WINDOW_LINES = 4

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
  /** When the device started it, as far as the host knows: sent to an idle device, or the line before ended. */
  startedAt: number
  timer: NodeJS.Timeout | null
  /** Bytes on the wire: the line, its sentinel and the line end. */
  wire: number
  /** Heartbeat bytes written after it (they wait in the device's input buffer too). */
  trailing: number
  /** Its timeout passed: nothing more is sent until its sentinel is back (the device may be wedged). */
  overdue: boolean
  /** A resync after lost input (no requester, no observers); nothing is sent behind it. */
  internal?: boolean
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
  private readonly windowBytes: number
  private readonly windowLines: number
  /** Waiting lines per session key, and the round-robin order of keys with waiting lines. */
  private readonly waiting = new Map<string, Entry[]>()
  private order: string[] = []
  private total = 0
  /** Lines on the wire, oldest (the one the device runs) first. */
  private flight: InFlight[] = []
  private open = false
  private readonly listeners = new Set<(record: LineRecord) => void>()
  /** Milliseconds with at least one line on the wire, and since when the current stretch runs. */
  private busyTotal = 0
  private busySince: number | null = null
  /** Device lines that arrived while no line was on the device (garbage, late echoes). */
  stray = 0
  sent = 0
  completed = 0
  /** Lines whose sentinel never came while a later one's did: the device lost input. */
  lost = 0

  constructor(options: QueueOptions) {
    this.options = options
    this.nonce = options.nonce ?? defaultNonce
    this.windowBytes = options.windowBytes ?? WINDOW_BYTES
    this.windowLines = Math.max(1, options.windowLines ?? WINDOW_LINES)
  }

  /** Lines waiting for the device: in the queue, or sent ahead of the running one. */
  get queued(): number { return this.total + this.ahead() }
  get busy(): boolean { return this.flight.length > 0 }
  /** Lines on the wire now (sent, sentinel not back). */
  get inFlight(): number { return this.flight.length }
  /** Milliseconds the line on the device has been running, or null. */
  currentAge(): number | null {
    const head = this.flight[0]
    return head ? Date.now() - head.startedAt : null
  }
  /**
   * Milliseconds so far with at least one line on the wire: an upper bound of the device's busy
   * time (it includes the last line's trip back), the figure the bench reports as a share of wall time.
   */
  busyMs(): number {
    return this.busyTotal + (this.busySince === null ? 0 : performance.now() - this.busySince)
  }

  /** Every completed line, labelled: for observers. Returns the unsubscribe function. */
  onLine(listener: (record: LineRecord) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** Queues a validated line for a session; resolves to its output lines. */
  submit(key: string, origin: Origin, line: string, timeoutMs?: number, tag?: string): Promise<string[]> {
    const mine = this.waiting.get(key)
    // Lines sent ahead still wait for the device: they count against the caps as before pipelining.
    if ((mine?.length ?? 0) + this.ahead(key) >= this.options.perSession) {
      return Promise.reject(
        new TxtzymeError(
          'TXTZYME_SESSION_QUEUE_FULL',
          `you already have ${this.options.perSession} lines waiting for the device: wait for their output before ` +
            `sending more`,
        ),
      )
    }
    if (this.total + this.ahead() >= this.options.global) {
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

  /**
   * Writes an empty line: the device layer's heartbeat, whose write is what reveals a vanished
   * tty, so it is never skipped. An idle device reads it at once; behind a running line it waits
   * in the input buffer, so it counts in the window and holds back lines sent ahead. Beyond the
   * buffer a board without flow control drops it, which loses nothing: it is an empty line.
   */
  heartbeat(): void {
    const last = this.flight[this.flight.length - 1]
    if (last) last.trailing++
    this.options.write('\n')
  }

  /** A line the device printed, without its line ending. */
  deviceLine(text: string): void {
    const head = this.flight[0]
    if (!head) {
      this.stray++
      return
    }
    if (text.endsWith(head.nonce)) {
      // Output without a line ending just before the sentinel still belongs to this line.
      const before = text.slice(0, text.length - head.nonce.length)
      if (before.length > 0) this.keep(head, before)
      this.finish()
      return
    }
    // A later line's sentinel before the head's: the device lost input (its buffer overflowed, or
    // bytes were dropped on the way). The lines up to it cannot be told apart any more.
    for (let i = 1; i < this.flight.length; i++) {
      if (text.endsWith((this.flight[i] as InFlight).nonce)) {
        this.outOfStep()
        return
      }
    }
    this.keep(head, text)
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
   * went away); its lines already on the wire run out and their output goes to observers only.
   */
  cancel(key: string, tag?: string): void {
    const matches = (e: Entry): boolean => e.key === key && (tag === undefined || e.tag === tag)
    const mine = this.waiting.get(key)
    if (mine) {
      const dropped = mine.filter(matches)
      const kept = mine.filter((e) => !matches(e))
      if (kept.length > 0) this.waiting.set(key, kept)
      else {
        this.waiting.delete(key)
        this.order = this.order.filter((k) => k !== key)
      }
      this.total -= dropped.length
      for (const entry of dropped) this.answer(entry, new TxtzymeError('TXTZYME_CANCELLED', 'the client went away'))
    }
    for (const f of this.flight) {
      if (matches(f.entry)) this.answer(f.entry, new TxtzymeError('TXTZYME_CANCELLED', 'the client went away'))
    }
  }

  /** Fails the lines on the wire and every waiting line (device lost, plugin closing). */
  failAll(error: TxtzymeError): void {
    this.failInFlight(error)
    const all = [...this.waiting.values()].flat()
    this.waiting.clear()
    this.order = []
    this.total = 0
    for (const entry of all) this.answer(entry, error)
  }

  /** Fails exactly the lines on the wire (their sentinels will never come: the device was reset). */
  failInFlight(error: TxtzymeError): void {
    const flight = this.flight
    this.flight = []
    this.idle()
    for (const f of flight) {
      if (f.timer) clearTimeout(f.timer)
      this.answer(f.entry, error)
    }
  }

  private answer(entry: Entry, result: string[] | TxtzymeError): void {
    if (entry.answered) return
    entry.answered = true
    if (result instanceof TxtzymeError) entry.reject(result)
    else entry.resolve(result)
  }

  /** Lines sent ahead of the running one (of one session, or of all): they wait on the device. */
  private ahead(key?: string): number {
    let n = 0
    for (let i = 1; i < this.flight.length; i++) if (key === undefined || this.flight[i]?.entry.key === key) n++
    return n
  }

  /** Bytes waiting in the device's input buffer, at worst: all but the running line, and heartbeats. */
  private buffered(): number {
    let bytes = 0
    for (let i = 0; i < this.flight.length; i++) {
      const f = this.flight[i] as InFlight
      bytes += (i === 0 ? 0 : f.wire) + f.trailing
    }
    return bytes
  }

  private idle(): void {
    if (this.busySince !== null && this.flight.length === 0) {
      this.busyTotal += performance.now() - this.busySince
      this.busySince = null
    }
  }

  /** The head's sentinel came: answer it, start the next line's clock, send more. */
  private finish(): void {
    const current = this.flight.shift() as InFlight
    if (current.timer) clearTimeout(current.timer)
    if (current.internal) {
      if (this.flight.length === 0) this.idle()
      this.pump()
      return
    }
    this.completed++
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
    this.record(current)
    const next = this.flight[0]
    if (next) this.start(next)
    else this.idle()
    this.pump()
  }

  /**
   * A later sentinel came first: the device lost input. Every line on the wire fails with
   * TXTZYME_LINE_LOST (those before it were lost, it and those after may have run merged with
   * what was left of them), then a resync: a line end (the device may hold part of a line) and a
   * sentinel nobody asked for; what the device prints up to it is dropped, and nothing more is
   * sent until it is back.
   */
  private outOfStep(): void {
    const gone = this.flight
    this.flight = []
    for (const f of gone) {
      if (f.timer) clearTimeout(f.timer)
      if (f.internal) continue
      this.lost++
      this.answer(f.entry, new TxtzymeError('TXTZYME_LINE_LOST',
        'the device lost input while this line was on the wire (it or one sent with it did not arrive whole): ' +
          'run it again'))
    }
    const nonce = this.nonce()
    const entry: Entry = {
      key: '', origin: { site: '', label: '' }, line: '', timeoutMs: this.options.timeoutMs,
      resolve: () => {}, reject: () => {}, answered: true, timedOut: false, tag: undefined,
    }
    const resync: InFlight = {
      entry, nonce, lines: [], bytes: 0, overflow: false, startedAt: Date.now(), timer: null, wire: 0, trailing: 0,
      overdue: false, internal: true,
    }
    this.flight.push(resync)
    this.start(resync)
    this.options.write(`\n_${nonce}_\n`)
  }

  private record(current: InFlight): void {
    const record: LineRecord = {
      origin: current.entry.origin,
      line: current.entry.line,
      lines: current.lines,
      timedOut: current.entry.timedOut,
      ms: Date.now() - current.startedAt,
      truncated: current.overflow,
    }
    for (const listener of this.listeners) {
      try { listener(record) } catch { /* an observer's failure is its own */ }
    }
  }

  /**
   * The line reaches the device: its timeout counts from now, as it did when one line was on the
   * wire at a time, so a line sent ahead behind a slow one does not time out for the slow one.
   */
  private start(current: InFlight): void {
    current.startedAt = Date.now()
    const entry = current.entry
    current.timer = setTimeout(() => {
      current.timer = null
      current.overdue = true
      entry.timedOut = !entry.answered
      this.answer(entry, new TxtzymeError('TXTZYME_TIMEOUT',
        `no end of output within ${entry.timeoutMs} ms; the device finishes the line before the next one is sent`))
    }, entry.timeoutMs)
  }

  /** Sends waiting lines, round-robin, while the window has room for the next one. */
  private pump(): void {
    if (!this.open || this.flight.some((f) => f.overdue || f.internal)) return
    let text = ''
    let buffered = this.buffered()
    while (this.flight.length < this.windowLines) {
      const key = this.order[0]
      if (key === undefined) break
      const mine = this.waiting.get(key) as Entry[]
      const entry = mine[0] as Entry
      const nonce = this.nonce()
      const wire = entry.line.length + nonce.length + 3
      // An idle device reads a line of any length; behind a running line it must fit the buffer.
      if (this.flight.length > 0 && buffered + wire > this.windowBytes) break
      this.order.shift()
      mine.shift()
      this.total--
      if (mine.length > 0) this.order.push(key)
      else this.waiting.delete(key)
      const current: InFlight = {
        entry, nonce, lines: [], bytes: 0, overflow: false, startedAt: Date.now(), timer: null, wire, trailing: 0,
        overdue: false,
      }
      if (this.flight.length === 0) {
        this.start(current)
        if (this.busySince === null) this.busySince = performance.now()
      } else buffered += wire
      this.flight.push(current)
      this.sent++
      text += `${entry.line}_${nonce}_\n`
    }
    // One write for the lines sent together: fewer system calls, the same bytes.
    if (text) this.options.write(text)
  }
}
