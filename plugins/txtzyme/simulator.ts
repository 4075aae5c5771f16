// A Txtzyme interpreter: the firmware's command set (WardCunningham/Txtzyme), its line buffer,
// its bounded input buffer (what arrives while a line runs and does not fit is lost), its drop
// of output the host does not read, CRLF output and real-time delays (scaled by a speed factor
// for tests), with simulated pins and analog inputs. It is byte-oriented: feed it what the host
// writes, it calls `output` with what the device would print. simulator-cli.ts serves it on a tty.

/** The firmware keeps up to 1023 characters of a line (a 1024-byte buffer with its NUL). */
export const LINE_BUFFER = 1024
/**
 * Bytes that wait for the firmware while it runs a line: the USB OUT endpoint's two 64-byte banks
 * on the ATmega32U4 (usb_serial.c: CDC_RX_SIZE 64, EP_DOUBLE_BUFFER). The simulator drops what
 * arrives beyond them, as a board without flow control does (a Teensy NAKs instead), so a host
 * that sends too far ahead loses lines here. An idle firmware reads as fast as bytes come.
 */
export const INPUT_BUFFER = 128
/** Bytes of output the device holds for a host that does not read: the two 64-byte IN banks. */
export const OUTPUT_BUFFER = 128
/** usb_serial.c TRANSMIT_TIMEOUT: a print waits this long for the host to take output, then is dropped. */
export const TRANSMIT_TIMEOUT_MS = 25
export const CHIP_NAME = 'ATmega32U4'
export const HELP_TEXT = [
  'Txtzyme simulator (wikifarm)',
  '0-9<num>\tenter number',
  '<num>p\tprint number',
  '<num>a-f<pin>\tselect pin',
  '<pin>i<num>\tinput',
  '<pin><num>o\toutput',
  '<num>m\tmsec delay',
  '<num>u\tusec delay',
  '<num>{}\trepeat',
  'k<num>\tloop count',
  '_<words>_\tprint words',
  '<num>s<num>\tanalog sample',
  'v\tprint version',
  'h\tprint help',
  '<pin>t<num>\tpulse width',
]

const PORTS = 6 // a..f
const PINS = 8

export interface SimulatorOptions {
  /** Delays run `speed` times faster than real time (1 = real time). */
  speed?: number
  /** Called with what the device prints, in order. */
  output: (text: string) => void
  /** Bytes received while a line runs that are kept (INPUT_BUFFER); the rest is lost. */
  inputBuffer?: number
  /**
   * Bytes printed that the host has not taken yet (where the serving side can tell). Past
   * `outputBuffer` a print waits TRANSMIT_TIMEOUT_MS for the host, then is dropped, and later
   * prints are dropped at once until the host reads again: usb_serial_putchar's behaviour.
   */
  unread?: () => number
  outputBuffer?: number
  /** How long a print waits while the host takes nothing (TRANSMIT_TIMEOUT_MS). */
  transmitTimeoutMs?: number
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export class TxtzymeSimulator {
  /** x, the firmware's one 16-bit register. */
  x = 0
  port = 0
  pin = 0
  /** Output levels and directions per port (bit per pin). */
  readonly outputs = new Uint8Array(PORTS)
  readonly directions = new Uint8Array(PORTS)
  /** Levels an input pin reads (set by tests or a demo). */
  readonly inputs = new Uint8Array(PORTS)
  /** Analog channels 0..15, 10-bit values. */
  readonly analog = Array.from({ length: 16 }, (_, channel) => (channel * 64 + 17) % 1024)
  /** Pulse widths `t` reports per port/pin, in microseconds (0: no pulse, times out). */
  readonly pulses = new Map<string, number>()
  /** Lines run so far. */
  linesRun = 0
  /** Bytes lost because they arrived while a line ran and the input buffer was full. */
  inputDropped = 0
  /** Bytes of output dropped because the host did not read them. */
  outputDropped = 0
  /** Milliseconds spent running lines (the device's busy time). */
  busyMs = 0

  private readonly speed: number
  private readonly emit: (text: string) => void
  private readonly inputBuffer: number
  private readonly unread: (() => number) | null
  private readonly outputBuffer: number
  private readonly transmitTimeoutMs: number
  /** The line being read (recv_str's buffer). */
  private buffer = ''
  /** What arrived while a line ran, bounded by inputBuffer. */
  private fifo = ''
  private running: Promise<void> | null = null
  /** A print was dropped: the next ones are dropped at once until the host reads (usb_serial.c). */
  private previousTimeout = false
  /** Delay owed, in ms, not yet slept: slept before the next output and at the end of a line. */
  private owed = 0
  private stopped = false

  constructor(options: SimulatorOptions) {
    this.speed = options.speed ?? 1
    this.emit = options.output
    this.inputBuffer = options.inputBuffer ?? INPUT_BUFFER
    this.unread = options.unread ?? null
    this.outputBuffer = options.outputBuffer ?? OUTPUT_BUFFER
    this.transmitTimeoutMs = options.transmitTimeoutMs ?? TRANSMIT_TIMEOUT_MS
  }

  /**
   * Bytes from the host. While a line runs they wait in the input buffer, and what does not fit
   * is lost; otherwise the firmware reads them: CR or LF ends a line, printable ASCII is kept up
   * to the line buffer, an empty line is skipped at once, and a line starts running.
   */
  input(data: string | Uint8Array): void {
    const text = typeof data === 'string' ? data : Buffer.from(data).toString('latin1')
    if (this.stopped) return
    if (this.running) {
      this.hold(text)
      return
    }
    const read = this.read(text)
    if (read === null) return
    this.hold(read.rest)
    this.running = this.runFrom(read.line).finally(() => { this.running = null })
  }

  /** Resolves once every line received so far has run. */
  async idle(): Promise<void> {
    while (this.running) await this.running
  }

  /** Stops running lines (those waiting are dropped). */
  stop(): void {
    this.stopped = true
    this.fifo = ''
  }

  private hold(text: string): void {
    const room = Math.max(0, this.inputBuffer - this.fifo.length)
    if (text.length > room) this.inputDropped += text.length - room
    this.fifo += text.slice(0, room)
  }

  /** recv_str: reads up to the end of the first non-empty line; null while no line is complete. */
  private read(text: string): { line: string; rest: string } | null {
    for (let i = 0; i < text.length; i++) {
      const ch = text[i] as string
      if (ch === '\r' || ch === '\n') {
        const line = this.buffer
        this.buffer = ''
        if (line === '') {
          this.linesRun++ // parse("") returns at once
          continue
        }
        return { line, rest: text.slice(i + 1) }
      }
      if (ch >= ' ' && ch <= '~' && this.buffer.length < LINE_BUFFER - 1) this.buffer += ch
    }
    return null
  }

  /** Runs a line, then every line that waits in the input buffer, as the firmware's main loop. */
  private async runFrom(first: string): Promise<void> {
    let line: string | null = first
    while (line !== null && !this.stopped) {
      const started = performance.now()
      await this.run(line)
      this.busyMs += performance.now() - started
      const waiting = this.fifo
      this.fifo = ''
      const read = this.read(waiting)
      line = read?.line ?? null
      if (read) this.fifo = read.rest + this.fifo
    }
  }

  private async settle(): Promise<void> {
    if (this.owed <= 0) return
    const ms = this.owed / this.speed
    this.owed = 0
    if (ms >= 1) await sleep(ms)
  }

  private async print(text: string): Promise<void> {
    await this.settle()
    if (this.stopped) return
    const unread = this.unread
    if (unread && unread() > this.outputBuffer) {
      if (!this.previousTimeout) {
        // Each byte waits for a free bank, not the whole print: a host that reads slowly keeps
        // making room and loses nothing; one that takes nothing for the timeout loses the print.
        let until = performance.now() + this.transmitTimeoutMs
        let last = unread()
        while (unread() > this.outputBuffer && performance.now() < until) {
          await sleep(1)
          if (unread() < last) until = performance.now() + this.transmitTimeoutMs
          last = unread()
        }
      }
      if (unread() > this.outputBuffer) {
        this.previousTimeout = true
        this.outputDropped += text.length
        return
      }
    }
    this.previousTimeout = false
    this.emit(text)
  }

  private readPin(): number {
    const bit = 1 << this.pin
    const port = this.port
    // An input pin whose output latch is high has its pull-up on, as on the AVR: it reads 1.
    if ((this.directions[port] ?? 0) & bit) return (this.outputs[port] ?? 0) & bit ? 1 : 0
    return ((this.inputs[port] ?? 0) | (this.outputs[port] ?? 0)) & bit ? 1 : 0
  }

  /** Runs one line to completion, as parse() in the firmware does. */
  async run(line: string): Promise<void> {
    this.linesRun++
    let i = 0
    let count = 0
    let loop = -1
    while (i < line.length && !this.stopped) {
      const ch = line[i++] as string
      if (ch >= '0' && ch <= '9') {
        let x = ch.charCodeAt(0) - 48
        while (i < line.length && (line[i] as string) >= '0' && (line[i] as string) <= '9') {
          x = (x * 10 + (line.charCodeAt(i++) - 48)) & 0xffff
        }
        this.x = x
        continue
      }
      switch (ch) {
        case 'p':
          await this.print(`${this.x}\r\n`)
          break
        case 'a': case 'b': case 'c': case 'd': case 'e': case 'f':
          this.port = ch.charCodeAt(0) - 97
          this.pin = this.x % PINS
          break
        case 'i': {
          const bit = 1 << this.pin
          this.directions[this.port] = (this.directions[this.port] ?? 0) & ~bit
          this.x = this.readPin()
          break
        }
        case 'o': {
          const bit = 1 << this.pin
          this.directions[this.port] = (this.directions[this.port] ?? 0) | bit
          if (this.x % 2) this.outputs[this.port] = (this.outputs[this.port] ?? 0) | bit
          else this.outputs[this.port] = (this.outputs[this.port] ?? 0) & ~bit
          break
        }
        case 'm':
          this.owed += this.x
          break
        case 'u':
          this.owed += this.x / 1000
          break
        case '{': {
          count = this.x
          loop = i
          // Skip to the closing brace, then fall into it, as the firmware does.
          while (i < line.length && line[i] !== '}') i++
          i++
          if (count > 0) {
            count--
            i = loop
          }
          break
        }
        case '}':
          if (count > 0 && loop >= 0) {
            count--
            i = loop
          }
          break
        case 'k':
          this.x = count
          break
        case '_': {
          let text = ''
          while (i < line.length && line[i] !== '_') text += line[i++]
          i++ // past the closing _ (or the end)
          await this.print(`${text}\r\n`)
          break
        }
        case 's':
          this.x = this.analog[this.x % this.analog.length] ?? 0
          break
        case 't':
          this.x = this.pulses.get(`${this.port}:${this.pin}`) ?? 0
          this.owed += Math.max(this.x, 1) / 1000
          break
        case 'v':
          await this.print(`${CHIP_NAME}\r\n`)
          break
        case 'h':
          for (const row of HELP_TEXT) await this.print(`${row}\r\n`)
          break
        default:
          break // anything else is ignored
      }
    }
    await this.settle()
  }
}
