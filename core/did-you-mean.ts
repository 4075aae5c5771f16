// "Did you mean …?" for every name an operator types: flags, config keys, grant keys, plugin
// names and plugin options. Typos are one or two edits away; a swap of neighbours is one.
/** Edit distance, counting a swap of two neighbours as one edit ("prot" is one from "port"). */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) (d[0] as number[])[j] = j
  for (let i = 1; i <= a.length; i++) {
    const row = d[i] as number[]
    const prev = d[i - 1] as number[]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        row[j] = Math.min(row[j] as number, ((d[i - 2] as number[])[j - 2] as number) + 1)
      }
    }
  }
  return (d[a.length] as number[])[b.length] as number
}

/** The known name an unknown one was probably meant to be (with `prefix`), or ''. */
export function suggestion(name: string, known: readonly string[], prefix: string): string {
  const squash = (s: string): string => s.toLowerCase().replace(/[-_]/g, '')
  const target = squash(name)
  let best = ''
  let bestDistance = target.length <= 4 ? 1 : 2
  for (const k of known) {
    const dist = distance(target, squash(k))
    if (dist === 0) return `${prefix}${k}`
    if (dist <= bestDistance && (best === '' || dist < bestDistance)) {
      best = k
      bestDistance = dist
    }
  }
  return best ? `${prefix}${best}` : ''
}
