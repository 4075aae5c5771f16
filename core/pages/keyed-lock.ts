// One holder per key at a time: the "one writer per page" rule, without blocking other pages.
export class KeyedLock {
  // Made on first use: a lock per open site, most of them never written.
  #map: Map<string, Promise<void>> | null = null

  get #tails(): Map<string, Promise<void>> {
    return this.#map ??= new Map()
  }

  get size(): number {
    return this.#map?.size ?? 0
  }

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve()
    let release!: () => void
    const tail = new Promise<void>((resolve) => { release = resolve })
    const chained = previous.then(() => tail)
    this.#tails.set(key, chained)
    await previous
    try {
      return await task()
    } finally {
      release()
      // Only the last waiter clears the key, so the map holds only contended or active keys.
      if (this.#tails.get(key) === chained) this.#tails.delete(key)
    }
  }

  /** Resolves when every task queued so far has finished. */
  async drain(): Promise<void> {
    while (this.#map !== null && this.#map.size > 0) await Promise.all(this.#tails.values())
  }
}
