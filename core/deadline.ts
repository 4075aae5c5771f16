// The one deadline helper: every "this must finish within N ms" in the kernel (a plugin's launch,
// close and handlers, a socket's close handshake) races its promise against one timer here, and
// the timer is cleared as soon as either side settles, so no finished wait keeps a timer alive.

/**
 * Settles as `promise` does if it settles within `ms`; otherwise with what `onTimeout` returns
 * (or rejects with what it throws). The promise is not cancelled: its result is then ignored.
 */
export function deadline<T, E = never>(promise: Promise<T>, ms: number, onTimeout: () => E): Promise<T | E> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<E>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(onTimeout())
      } catch (err) {
        reject(err as Error)
      }
    }, ms)
  })
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer))
}
