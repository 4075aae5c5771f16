// A node's one LISTEN connection to the shared store: its own client, outside the pool (a pooled
// connection would be handed to requests and lose its LISTEN). When it breaks (the server
// restarts, the network cuts) it reconnects by itself, with a growing delay, and says so: the
// node may have missed notices while it was away and must forget what it caches.
import type pg from 'pg'

export type ListenState = 'connecting' | 'listening' | 'lost' | 'closed'

export interface ListenHandlers {
  /** A payload on the channel, in commit order. */
  onPayload(payload: string): void
  /** The connection is listening again after it was lost: notices may have been missed. */
  onRestored(): void
  /** The connection broke (the reason, for the log). */
  onLost(err: Error): void
}

export interface ListenOptions {
  /** First delay before reconnecting, ms; it doubles up to maxDelayMs. */
  minDelayMs?: number
  maxDelayMs?: number
}

export class ListenConnection {
  readonly #connect: () => pg.Client
  readonly #channel: string
  readonly #handlers: ListenHandlers
  readonly #minDelay: number
  readonly #maxDelay: number
  #client: pg.Client | null = null
  #state: ListenState = 'connecting'
  #delay: number
  #timer: NodeJS.Timeout | null = null
  #everListened = false
  #lastAttempt = 0

  constructor(connect: () => pg.Client, channel: string, handlers: ListenHandlers, options: ListenOptions = {}) {
    this.#connect = connect
    this.#channel = channel
    this.#handlers = handlers
    this.#minDelay = options.minDelayMs ?? 100
    this.#maxDelay = options.maxDelayMs ?? 2000
    this.#delay = this.#minDelay
  }

  get state(): ListenState {
    return this.#state
  }

  /** Connects and listens; rejects when the first attempt fails (the boot then stops). */
  async start(): Promise<void> {
    await this.#attempt()
  }

  async #attempt(): Promise<void> {
    this.#lastAttempt = Date.now()
    this.#state = 'connecting'
    const client = this.#connect()
    this.#client = client
    let failed = false
    const lost = (err: Error): void => {
      if (failed || this.#client !== client) return
      failed = true
      this.#client = null
      client.removeAllListeners('notification')
      void client.end().catch(() => {})
      if (this.#state === 'closed') return
      this.#state = 'lost'
      this.#handlers.onLost(err)
      this.#schedule()
    }
    client.on('error', lost)
    client.on('end', () => lost(new Error('the LISTEN connection ended')))
    client.on('notification', (message) => {
      if (message.channel === this.#channel && message.payload !== undefined) this.#handlers.onPayload(message.payload)
    })
    try {
      await client.connect()
      await client.query(`LISTEN ${this.#channel}`)
    } catch (err) {
      lost(err as Error)
      if (!this.#everListened) throw err
      return
    }
    if (this.#client !== client) return
    this.#state = 'listening'
    this.#delay = this.#minDelay
    if (this.#everListened) this.#handlers.onRestored()
    this.#everListened = true
  }

  #schedule(): void {
    if (this.#timer || !this.#everListened) return
    // Jitter, so the nodes of a farm do not all knock at once when the server comes back.
    const wait = this.#delay * (0.75 + Math.random() / 2)
    this.#delay = Math.min(this.#maxDelay, this.#delay * 2)
    this.#timer = setTimeout(() => {
      this.#timer = null
      if (this.#state !== 'closed') void this.#attempt().catch(() => {})
    }, wait)

  }

  /**
   * Someone is waiting for the connection (a request needs it): try now rather than at the end
   * of the backoff, at most once per minimum delay.
   */
  kick(): void {
    if (this.#state !== 'lost' || !this.#timer || Date.now() - this.#lastAttempt < this.#minDelay) return
    clearTimeout(this.#timer)
    this.#timer = null
    void this.#attempt().catch(() => {})
  }

  async close(): Promise<void> {
    this.#state = 'closed'
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    const client = this.#client
    this.#client = null
    if (client) await client.end().catch(() => {})
  }
}
