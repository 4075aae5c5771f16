// Summarising a V8 .cpuprofile (node --cpu-prof): self time per function and per area (a
// package, a wikifarm file, node's own code), as shares of the non-idle time.
import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}

interface CpuProfile {
  startTime: number
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

export interface SelfTime {
  name: string
  where: string
  share: number
  /** The caller that accounts for most of this function's self time (native code has no url). */
  caller: string
}

export interface ProfileSummary {
  /** Non-idle milliseconds sampled. */
  busyMs: number
  functions: SelfTime[]
  areas: { area: string; share: number }[]
  /** Share of the log: pino, its destinations, the access line, and the writes they make. */
  logging: number
}

/** Code that exists to write the log: a sample in it, or in what it calls, is the log's cost. */
const LOGGING = /node_modules\/(pino|sonic-boom|quick-format-unescaped|fast-safe-stringify)\/|\/(log-destination|access-log)\.[jt]s$/

/** Where a script URL belongs: a package, a wikifarm file, node's own code or the engine. */
export function areaOf(url: string): string {
  if (url === '') return '(V8 and native: GC, program, builtins)'
  if (url.startsWith('node:')) return 'node core'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg) return pkg[1] as string
  const own = /\/(core|plugins|schemas|bin)\/(.+)$/.exec(url)
  if (own) return `wikifarm ${own[1]}/${own[2]}`
  return url.replace(/^file:\/\//, '')
}

function shortUrl(url: string, line: number): string {
  if (url === '') return ''
  const pkg = /node_modules\/(.+)$/.exec(url)
  const tail = pkg
    ? (pkg[1] as string)
    : (/\/(core|plugins|schemas|bin)\/.+$/.exec(url)?.[0].slice(1) ?? url.replace(/^file:\/\//, ''))
  // tsx's transpiled modules report line 0 for every function: the file alone says as much.
  return line > 0 ? `${tail}:${line + 1}` : tail
}

/**
 * Self time of the samples taken between `window.fromMs` and `window.toMs` after the
 * profile started (so boot and shutdown are left out), the top `top` of each list.
 */
export function summariseProfile(
  file: string,
  window: { fromMs: number; toMs: number } = { fromMs: 0, toMs: Infinity },
  top = 12,
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parentOf = new Map<number, ProfileNode>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n)
  const self = new Map<number, number>()
  let at = 0
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0
    at += delta
    if (at / 1000 >= window.fromMs && at / 1000 <= window.toMs) self.set(id, (self.get(id) ?? 0) + delta)
  })
  const fns = new Map<string, { name: string; where: string; us: number; callers: Map<string, number> }>()
  const areas = new Map<string, number>()
  let busy = 0
  let logging = 0
  for (const [id, us] of self) {
    const node = byId.get(id)
    if (!node) continue
    const { functionName, url, lineNumber } = node.callFrame
    if (functionName === '(idle)') continue
    busy += us
    for (let at: ProfileNode | undefined = node; at; at = parentOf.get(at.id)) {
      if (LOGGING.test(at.callFrame.url)) {
        logging += us
        break
      }
    }
    const key = `${functionName}@${url}:${lineNumber}`
    const entry = fns.get(key) ?? {
      name: functionName || '(anonymous)',
      where: shortUrl(url, lineNumber),
      us: 0,
      callers: new Map(),
    }
    entry.us += us
    // The nearest caller with a name and a script: native frames say little on their own.
    let up = parentOf.get(id)
    while (up && (up.callFrame.url === '' || up.callFrame.functionName === '') && parentOf.get(up.id))
      up = parentOf.get(up.id)
    const caller = up
      ? `${up.callFrame.functionName || '(anonymous)'} ${shortUrl(up.callFrame.url, up.callFrame.lineNumber)}`.trim()
      : ''
    entry.callers.set(caller, (entry.callers.get(caller) ?? 0) + us)
    fns.set(key, entry)
    const area = areaOf(url)
    areas.set(area, (areas.get(area) ?? 0) + us)
  }
  return {
    busyMs: busy / 1000,
    functions: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({
        name: f.name,
        where: f.where,
        share: f.us / busy,
        caller: [...f.callers].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '',
      })),
    areas: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([area, us]) => ({ area, share: us / busy })),
    logging: logging / busy,
  }
}
