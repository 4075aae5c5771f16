// Splits what the device prints into lines, in linear time and bounded memory. The serialport
// ReadlineParser concatenates its whole pending buffer with every chunk and keeps it without
// limit: a device streaming noise without a line end made the farm copy quadratically (minutes
// of a blocked event loop for 32 MiB) and hold all of it. Here a line longer than `maxBytes`
// keeps only its last `maxBytes` (where a sentinel printed without a line end would be).

/** Longest device line kept: the firmware's lines are at most its 1024-byte buffer. */
export const MAX_DEVICE_LINE = 64 * 1024

export class DeviceLineSplitter {
  readonly maxBytes: number
  /** Lines cut to their last maxBytes bytes. */
  truncated = 0
  #pending: Buffer[] = []
  #pendingBytes = 0
  #cut = false

  constructor(maxBytes = MAX_DEVICE_LINE) {
    this.maxBytes = maxBytes
  }

  /** The complete lines in this chunk (and before it), without their `\n`, as latin1 text. */
  push(chunk: Buffer): string[] {
    const lines: string[] = []
    let start = 0
    for (let end = chunk.indexOf(0x0a); end >= 0; end = chunk.indexOf(0x0a, start)) {
      this.#add(chunk.subarray(start, end))
      lines.push(this.#take())
      start = end + 1
    }
    if (start < chunk.length) this.#add(chunk.subarray(start))
    return lines
  }

  #add(part: Buffer): void {
    if (part.length === 0) return
    // Copied: serialport may reuse its read buffer.
    this.#pending.push(Buffer.from(part))
    this.#pendingBytes += part.length
    // Compacted only past twice the bound, so each byte is copied a bounded number of times.
    if (this.#pendingBytes > 2 * this.maxBytes) {
      const all = Buffer.concat(this.#pending, this.#pendingBytes)
      const tail = Buffer.from(all.subarray(all.length - this.maxBytes))
      this.#pending = [tail]
      this.#pendingBytes = tail.length
      this.#cut = true
    }
  }

  #take(): string {
    let line = Buffer.concat(this.#pending, this.#pendingBytes)
    if (line.length > this.maxBytes) {
      line = line.subarray(line.length - this.maxBytes)
      this.#cut = true
    }
    if (this.#cut) this.truncated++
    this.#pending = []
    this.#pendingBytes = 0
    this.#cut = false
    return line.toString('latin1')
  }
}
