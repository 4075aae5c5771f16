// What the page store throws when a page or a folder cannot be read or written. It carries a
// code and a message and no HTTP status: the store knows nothing of HTTP, and the HTTP layer
// (core/kernel.ts, errorBody) decides what a client is answered (500, WIKIFARM_ERR_STORE).
export class StoreError extends Error {
  readonly code = 'WIKIFARM_ERR_STORE'

  constructor(message: string, options?: ErrorOptions) {
    super(`Storage failure: ${message}`, options)
    this.name = 'StoreError'
  }
}
