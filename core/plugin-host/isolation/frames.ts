// The wire of a `process` plugin's channel: length-prefixed frames on a socket pair (the child's
// fd 3), each a batch of messages in V8's serialization (structured-clone data, as a worker's
// messages are). Node's own IPC channel reads a length prefix too, but buffers whatever length
// the child claims: a hostile plugin could make the farm allocate without bound. Here a frame
// past MAX_FRAME_BYTES is refused from its prefix alone, before its body is read, and a body that
// does not decode is refused too; either ends the plugin (the stream cannot be trusted after).
import v8 from 'node:v8'

/** The largest frame either side accepts: far above any request or reply the kernel carries. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024
const HEADER_BYTES = 4

/** A frame the channel refuses: the plugin that wrote it is ended with this reason. */
export class FrameError extends Error {}

/** One frame: a big-endian 32-bit body length, then the body. Throws when the body is too large. */
export function encodeFrame(value: unknown, max = MAX_FRAME_BYTES): Buffer {
  const body = v8.serialize(value)
  if (body.length > max) throw new RangeError(`a message of ${body.length} bytes passes the limit of ${max} bytes`)
  const frame = Buffer.allocUnsafe(HEADER_BYTES + body.length)
  frame.writeUInt32BE(body.length, 0)
  body.copy(frame, HEADER_BYTES)
  return frame
}

/**
 * Cuts a byte stream into frames and decodes them. Holds at most one frame's bytes (plus the
 * chunk being read), so what it buffers is bounded by `max`, whatever the writer claims.
 */
export class FrameReader {
  readonly #max: number
  #chunks: Buffer[] = []
  #buffered = 0
  /** The body length of the frame being read, once its header is in. */
  #need = -1

  constructor(max = MAX_FRAME_BYTES) {
    this.#max = max
  }

  /** Takes a chunk; returns the values of the frames it completes. Throws FrameError. */
  push(chunk: Buffer): unknown[] {
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
    const values: unknown[] = []
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < HEADER_BYTES) break
        const length = this.#take(HEADER_BYTES).readUInt32BE(0)
        if (length > this.#max)
          throw new FrameError(`a frame of ${length} bytes passes the limit of ${this.#max} bytes`)
        this.#need = length
      }
      if (this.#buffered < this.#need) break
      const body = this.#take(this.#need)
      this.#need = -1
      try {
        values.push(v8.deserialize(body))
      } catch (err) {
        throw new FrameError(`a frame of ${body.length} bytes does not decode: ${(err as Error).message}`)
      }
    }
    return values
  }

  #take(n: number): Buffer {
    const first = this.#chunks[0] as Buffer
    const all = first.length >= n ? first : Buffer.concat(this.#chunks, this.#buffered)
    const rest = all.subarray(n)
    if (first.length >= n) {
      if (rest.length > 0) this.#chunks[0] = rest
      else this.#chunks.shift()
    } else {
      this.#chunks = rest.length > 0 ? [rest] : []
    }
    this.#buffered -= n
    return all.subarray(0, n)
  }
}
