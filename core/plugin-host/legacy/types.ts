// The shapes the legacy adapter's parts share (host.ts, child-host.ts, child-protocol.ts), apart
// from the code, so the farm's side and the child's import them without a cycle.
import type { LegacyMode } from './modes.js'

export type LegacyState = 'disabled' | 'launching' | 'running' | 'failed' | 'stopped'

/** The legacy child as the status page shows it. */
export interface LegacyChildStatus {
  pid: number | null
  restarts: number
  state: 'starting' | 'running' | 'restarting' | 'stopped'
  lastExit: string | null
}

/** Where legacy plugins run: in one child process of the farm's (the default), or in the farm's thread. */
export type LegacyIsolation = 'process' | 'none'

/** One legacy plugin's line in /system/status.json. */
export interface LegacyStatus {
  name: string
  source: string
  legacy: true
  /** 'shared': one instance for every site; 'per-site': one for each site, on its first use. */
  mode: LegacyMode
  state: LegacyState
  reason: string | null
  launchedAt: string | null
  /** startServer calls that finished: 1 in shared mode, one per site (and relaunch) in per-site mode. */
  launches: number
  /** Instances alive now. */
  instances: number
  /** Per-site mode: sites whose instance failed (start threw, process.exit), with the reason. */
  failedSites: Record<string, string>
  /** Exceptions its code threw (in handlers, callbacks, timers), contained; the last one's message. */
  faults: number
  lastFault: string | null
  /** 'process': in the farm's legacy child (child-host.ts); 'none': in the farm's own thread. */
  isolation: LegacyIsolation
  trust: 'farm'
  sites: string[] | '*'
  /** Whether the plugin attached a websocket server to params.server. */
  websocket: boolean
  /** The legacy child that runs it (isolation 'process'): its pid, restarts and state. */
  child?: LegacyChildStatus
}

/** The operator's grant for a legacy plugin: only these keys mean something for one. */
export interface LegacyGrant {
  enabled?: boolean
  sites?: string[] | '*'
  mode?: LegacyMode
}
