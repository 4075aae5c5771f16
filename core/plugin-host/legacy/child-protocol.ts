// The messages between the farm and its legacy child (child-host.ts, child-main.ts), over the
// child's IPC channel, and the header that carries a forwarded request's identity over the
// child's private unix socket. The child trusts that header only with the token the farm gave
// it at spawn; the farm strips the header from every visitor's request before forwarding.
import type { LegacyConfig } from './argv.js'
import type { LegacyGrant, LegacyStatus } from './types.js'
import type { LegacyPackage } from './packages.js'
import type { Page } from '../../../schemas/page.js'

export const FACTS_HEADER = 'x-wikifarm-legacy-facts'

/** What the farm decided about a forwarded request, for the child to rebuild argv and req.session. */
export interface ForwardedFacts {
  token: string
  plugin: string
  site: string
  root: string
  wikiDomain: string | null
  authorized: boolean
  admin: boolean
  friend: string | null
}

/** What the child needs to start the plugins: given to the farm's LegacyChild, passed on at spawn. */
export interface LegacyChildSettings {
  config: LegacyConfig
  packages: LegacyPackage[]
  grants: Record<string, LegacyGrant>
  builtins: string[]
  launchTimeoutMs: number
  handlerTimeoutMs: number
}

export interface StartMessage extends LegacyChildSettings {
  t: 'start'
  token: string
  /** Where to listen: in a folder of the farm's, 0700. */
  socket: string
  maxInstances: number | null
}

export type PageOp =
  | { op: 'get'; slug: string }
  | { op: 'put'; slug: string; page: Page }
  | { op: 'slugs' }

export type FarmToChild =
  | StartMessage
  | { t: 'status'; id: number }
  | { t: 'max-instances'; limit: number }
  | { t: 'ping'; seq: number }
  | { t: 'page-result'; id: number; value?: unknown; error?: string }

export type ChildToFarm =
  | { t: 'hello' }
  | { t: 'pong'; seq: number }
  | { t: 'ready'; socket: string; statuses: LegacyStatus[] }
  | { t: 'status'; id: number; statuses: LegacyStatus[] }
  | { t: 'log'; level: 'info' | 'warn' | 'error'; message: string; data: Record<string, unknown> }
  | ({ t: 'page'; id: number; site: string } & PageOp)
