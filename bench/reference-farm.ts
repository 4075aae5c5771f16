// The reference federated-wiki farm (the `wiki` npm package), installed by the bench itself
// into a scratch folder once per run and started with --farm on a scratch data folder.
//
// Counting its server-plugin launches: the reference calls each server plugin's startServer
// once per site, on the site's first visit. The install gets one more plugin,
// wiki-plugin-benchcount, whose startServer appends a line to $BENCH_PLUGIN_COUNT_FILE; it is
// listed in wiki's package.json because that list is what the reference iterates. Its own
// plugins' starts are counted from its log line "starting plugin <name>", printed just before
// each startServer (minus "failed to start plugin" lines).
import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { scratchDir } from './cleanup.js'
import { freePort, spawnServer, type Child } from './children.js'

const run = promisify(execFile)

export interface ReferenceInstall {
  /** The wiki package's folder. */
  root: string
  version: string
  installSeconds: number
}

export type ReferenceStatus = { ok: true; install: ReferenceInstall } | { ok: false; reason: string }

let installing: Promise<ReferenceStatus> | null = null

const COUNTER_PLUGIN = `// Installed by wikifarm's bench: counts startServer calls, one line each.
import { appendFileSync } from 'node:fs'
export function startServer(params) {
  const file = process.env.BENCH_PLUGIN_COUNT_FILE
  if (file) appendFileSync(file, (params && params.argv && params.argv.url || '?') + '\\n')
}
`

async function install(): Promise<ReferenceStatus> {
  if (process.env.BENCH_NO_REFERENCE) return { ok: false, reason: 'BENCH_NO_REFERENCE is set' }
  const prefix = join(scratchDir('reference', true), 'prefix')
  const started = performance.now()
  try {
    await run('npm', ['install', '-g', '--prefix', prefix, 'wiki', '--no-audit', '--no-fund', '--loglevel', 'error'], {
      timeout: 180_000, maxBuffer: 16 * 1024 * 1024,
    })
  } catch (err) {
    const message = (err as { stderr?: string; message: string }).stderr?.trim() || (err as Error).message
    return { ok: false, reason: `npm install -g wiki failed: ${message.split('\n').slice(0, 3).join(' ')}` }
  }
  const root = join(prefix, 'lib', 'node_modules', 'wiki')
  if (!existsSync(join(root, 'index.js')))
    return { ok: false, reason: `npm installed no wiki/index.js under ${prefix}` }
  const pkgFile = join(root, 'package.json')
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { version: string; dependencies: Record<string, string> }
  const plugin = join(root, 'node_modules', 'wiki-plugin-benchcount')
  mkdirSync(join(plugin, 'server'), { recursive: true })
  writeFileSync(
    join(plugin, 'package.json'),
    JSON.stringify({ name: 'wiki-plugin-benchcount', version: '0.0.0', type: 'module' }),
  )
  writeFileSync(join(plugin, 'server', 'server.js'), COUNTER_PLUGIN)
  pkg.dependencies['wiki-plugin-benchcount'] = '0.0.0'
  writeFileSync(pkgFile, JSON.stringify(pkg, null, 2))
  return { ok: true, install: { root, version: pkg.version, installSeconds: (performance.now() - started) / 1000 } }
}

/** Installs the reference once per run; later calls share the install (or its failure). */
export function referenceFarm(): Promise<ReferenceStatus> {
  installing ??= install()
  return installing
}

export interface ReferenceOptions {
  data: string
  logFile: string
  countFile?: string
}

export async function startReference(ref: ReferenceInstall, opts: ReferenceOptions): Promise<Child> {
  const port = await freePort()
  return spawnServer({
    name: 'reference farm',
    port,
    args: [
      join(ref.root, 'index.js'),
      '--farm',
      '--data',
      opts.data,
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--security_type',
      'friends',
    ],
    // Express's default 'development' mode makes every site print all its options on first
    // visit; operators run production. Its per-request log line (morgan) cannot be turned off.
    env: { NODE_ENV: 'production', ...(opts.countFile ? { BENCH_PLUGIN_COUNT_FILE: opts.countFile } : {}) },
    logFile: opts.logFile,
  })
}

/** startServer calls per plugin, from the counter file and the reference's log. */
export function referencePluginStarts(logFile: string, countFile: string | null): Record<string, number> {
  const counts: Record<string, number> = {}
  const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''
  for (const m of log.matchAll(/^starting plugin (\S+)/gm)) counts[m[1] as string] = (counts[m[1] as string] ?? 0) + 1
  for (const m of log.matchAll(/^failed to start plugin (\S+)/gm))
    counts[m[1] as string] = (counts[m[1] as string] ?? 0) - 1
  // The counter plugin is counted by its own file, not its log line.
  delete counts['wiki-plugin-benchcount']
  if (countFile)
    counts['wiki-plugin-benchcount (counter file)'] = existsSync(countFile)
      ? readFileSync(countFile, 'utf8').split('\n').filter(Boolean).length
      : 0
  return counts
}
