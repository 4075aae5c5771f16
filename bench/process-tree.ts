// A process's descendants, from Linux /proc: the reference farm serves from a cluster worker
// under its primary, so its memory and its cleanup include the worker.
import { readdirSync, readFileSync } from 'node:fs'

/** Every process whose ancestry leads to `pid` (Linux /proc), not `pid` itself. */
export function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // The command name may hold spaces and parentheses: the ppid follows the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)])
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = []
  const walk = (p: number) => { for (const c of parents.get(p) ?? []) { found.push(c); walk(c) } }
  walk(pid)
  return found
}
