// What a page store throws when a page or a folder (or the database) cannot be read or written.
// It carries a code and a message and no HTTP status: the store knows nothing of HTTP, and the
// HTTP layer (core/kernel.ts, errorBody) decides what a client is answered from the code.
export type StoreErrorCode =
  /** Anything else failed: a page that is not a page, a full disk, a statement refused (500). */
  | 'WIKIFARM_ERR_STORE'
  /** The store cannot be reached now (a database down or restarting, no free connection): 503. */
  | 'WIKIFARM_ERR_STORE_UNAVAILABLE'
  /** A value this store cannot hold (PostgreSQL: \u0000, a lone surrogate); nothing was written: 422. */
  | 'WIKIFARM_ERR_UNSTORABLE'

const PREFIX: Record<StoreErrorCode, string> = {
  WIKIFARM_ERR_STORE: 'Storage failure',
  WIKIFARM_ERR_STORE_UNAVAILABLE: 'The page store cannot be reached',
  WIKIFARM_ERR_UNSTORABLE: 'The page store cannot keep this',
}

export class StoreError extends Error {
  readonly code: StoreErrorCode

  constructor(message: string, options?: ErrorOptions & { code?: StoreErrorCode }) {
    const code = options?.code ?? 'WIKIFARM_ERR_STORE'
    super(`${PREFIX[code]}: ${message}`, options)
    this.name = 'StoreError'
    this.code = code
  }
}
