// wikifarm as an operator runs it: the CLI (bin/wikifarm.js) in its own process, farm mode, on
// 127.0.0.1, so boot time and memory are the farm's own and not the bench's.
import { join } from 'node:path'
import { freePort, spawnServer, type Child } from './children.js'
import { PACKAGE_ROOT } from '../core/package-info.js'

const BIN = join(PACKAGE_ROOT, 'bin', 'wikifarm.js')
export const BENCH_COOKIE_SECRET = 'bench-cookie-secret-'.repeat(3)
/** The bench's load comes from one address: the farm's per-address rate limits and caps are off. */
const NO_LIMITS = [
  '--loginRate',
  '0',
  '--claimRate',
  '0',
  '--editRate',
  '0',
  '--upgradeRate',
  '0',
  '--socketsPerIp',
  '0',
  '--socketsPerSite',
  '0',
  '--readRate',
  '0',
  '--connectionsPerIp',
  '0',
]

export interface WikifarmOptions {
  data: string
  /** Extra CLI flags, e.g. ['--farm']; secrets go in `env` (WIKIFARM_ADMIN), never in argv. */
  flags?: string[]
  /** Node flags before the script, e.g. ['--cpu-prof', '--cpu-prof-dir', dir]. */
  nodeFlags?: string[]
  env?: Record<string, string>
  /**
   * Default warn: no line per request. 'info' logs every request, as the reference does;
   * null passes no --logLevel at all: the default as shipped (info, one line per request).
   */
  logLevel?: string | null
  logFile?: string | null
  name?: string
}

export async function startWikifarm(opts: WikifarmOptions): Promise<Child> {
  const port = await freePort()
  return spawnServer({
    name: opts.name ?? 'wikifarm',
    port,
    args: [...(opts.nodeFlags ?? []), BIN, '--farm', '--data', opts.data, '--host', '127.0.0.1', '--port', String(port),
      ...(opts.logLevel === null ? [] : ['--logLevel', opts.logLevel ?? 'warn']), ...NO_LIMITS, ...(opts.flags ?? [])],
    // The secret through the environment, as operators are told to (never argv).
    env: { WIKIFARM_COOKIE_SECRET: BENCH_COOKIE_SECRET, ...opts.env },
    logFile: opts.logFile ?? null,
  })
}
