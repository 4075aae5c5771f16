// Where the farm's log goes when it is not a terminal: a file descriptor (stdout), written in
// batches. A write per line was the largest single cost of a page read with the access log on
// (one system call per request); here the lines of the next few milliseconds (or 64 KiB of
// them, whichever comes first) go out in one write. Nothing waits in a thread pool: at any
// moment the only unwritten lines are those of the current window, and they are written
// synchronously at exit, on close (flush), and on a crash the farm handles.
import { writeSync } from 'node:fs'

/** How long lines wait to be joined into one write: a log a few milliseconds late costs nobody. */
const WINDOW_MS = 5
/** Written at once past this many characters, so a burst never holds much. */
const WINDOW_CHARS = 64 * 1024
/** How long to wait before trying again when the descriptor is full (a pipe nobody reads yet). */
const RETRY_MS = 10
/** At exit a full pipe is retried this long, then the rest is dropped rather than hang the exit. */
const EXIT_RETRY_MS = 1000

export class LogDestination {
  readonly #fd: number
  #pending = ''
  #rest: Buffer | null = null
  #scheduled = false
  #retry: NodeJS.Timeout | null = null
  #failed = false
  readonly #waiting: (() => void)[] = []

  constructor(fd = 1) {
    this.#fd = fd
    // Lines of the last turn are written before the process ends, whatever ends it.
    process.once('exit', () => this.flushSync())
  }

  /** pino's stream interface: one serialised line. */
  write(line: string): boolean {
    if (this.#failed) return true
    this.#pending += line
    if (this.#retry !== null) return true
    if (this.#pending.length > WINDOW_CHARS) {
      if (this.#drain()) this.#retryLater()
    } else if (!this.#scheduled) {
      this.#scheduled = true
      setTimeout(this.#writeNow, WINDOW_MS)
    }
    return true
  }

  /** pino's logger.flush(cb): calls back once every line logged so far is written. */
  flush(cb?: (err?: Error) => void): void {
    this.#drain()
    if (this.#empty || this.#failed) cb?.()
    else if (cb) this.#waiting.push(() => cb())
  }

  /** Writes what is pending now, retrying a full descriptor for a bounded time. */
  flushSync(): void {
    const deadline = Date.now() + EXIT_RETRY_MS
    while (this.#drain()) {
      if (Date.now() > deadline) break
    }
  }

  readonly #writeNow = (): void => {
    this.#scheduled = false
    if (this.#drain()) this.#retryLater()
    if (this.#empty || this.#failed) for (const done of this.#waiting.splice(0)) done()
  }

  #retryLater(): void {
    this.#retry ??= setTimeout(() => {
      this.#retry = null
      this.#writeNow()
    }, RETRY_MS)
    this.#retry.unref()
  }

  /** Writes as much as the descriptor takes; true when it is full (EAGAIN) and lines are left. */
  #drain(): boolean {
    while ((this.#rest !== null || this.#pending !== '') && !this.#failed) {
      // The tail of a partial write first (bytes: it may end inside a character), then the lines.
      const chunk: Buffer | string = this.#rest ?? this.#pending
      if (this.#rest === null) this.#pending = ''
      this.#rest = null
      try {
        const n = typeof chunk === 'string' ? writeSync(this.#fd, chunk) : writeSync(this.#fd, chunk)
        const size = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length
        if (n < size) this.#rest = (typeof chunk === 'string' ? Buffer.from(chunk) : chunk).subarray(n)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          this.#rest = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
          return true
        }
        // A closed stdout (EPIPE: the reader went away) or a broken descriptor: logging stops,
        // serving does not.
        this.#failed = true
        this.#pending = ''
        this.#rest = null
      }
    }
    return false
  }

  get #empty(): boolean {
    return this.#pending === '' && this.#rest === null
  }
}
