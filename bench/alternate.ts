// Measuring servers side by side: every one is already started and warmed; then `rounds`
// rounds, each measuring every server once, the order rotated every round, keeping each
// server's best. A burst of load from elsewhere on the machine then hurts one round of one
// server, not one server throughout.
export async function alternate<S extends { name: string }, R>(
  servers: readonly S[], rounds: number,
  measure: (server: S) => Promise<R>, better: (a: R, b: R) => boolean,
): Promise<Map<string, R>> {
  const best = new Map<string, R>()
  for (let round = 0; round < rounds; round++) {
    const shift = round % servers.length
    const order = [...servers.slice(shift), ...servers.slice(0, shift)]
    if (round % 2 === 1) order.reverse()
    for (const server of order) {
      const r = await measure(server)
      const previous = best.get(server.name)
      if (previous === undefined || better(r, previous)) best.set(server.name, r)
    }
  }
  return best
}
