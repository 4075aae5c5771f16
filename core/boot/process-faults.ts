// What the process does with errors nobody caught: a plugin's timer that throws, a promise a
// plugin forgot to await. Nothing in-process can tell for sure whose code it was, so the error's
// stack is read for a frame inside a plugin's folder, and the log names that plugin.
//
// The policy (docs/security.md):
// - an unhandled rejection is logged (naming the plugin when the stack shows one) and the farm
//   keeps serving: the rejection itself left no state half-changed;
// - an uncaught exception is logged as fatal (naming the plugin likewise), the farm closes
//   gracefully (acknowledged writes are flushed, sockets get 1001) and the process exits 1, for
//   the supervisor to restart: after a throw that unwound through unknown code, no state of the
//   process can be trusted. Isolating plugins in workers or processes (docs/security.md,
//   "Plugin isolation") is what keeps the farm up then.
import { isAbsolute, join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PACKAGE_ROOT } from '../package-info.js'

/** Where one plugin's code lives: frames under `dir` are the plugin's. */
export interface PluginSource {
  name: string
  dir: string
}

/** The built-in plugins' folder, as the registry finds it. */
export const BUILTIN_PLUGINS = fileURLToPath(new URL('../../plugins/', import.meta.url))

/**
 * The folders of the plugins a farm runs: built-ins under their folder, packages given as a
 * path under that path's folder, packages by name under node_modules/<name>/.
 */
export function pluginSources(
  records: ReadonlyArray<{ name: string; grant: { package?: string } }>,
  builtinDir = BUILTIN_PLUGINS,
): PluginSource[] {
  return records.flatMap(({ name, grant }) => {
    const spec = grant.package
    if (spec === undefined) return withSourceTwin(name, join(builtinDir, name) + sep)
    if (isAbsolute(spec) || spec.startsWith('.')) {
      const path = resolve(spec)
      // A path to a file names its folder; a path to a folder names itself.
      return withSourceTwin(name, /\.[cm]?[jt]s$/.test(path) ? join(path, '..') + sep : path + sep)
    }
    return [{ name, dir: `${sep}node_modules${sep}${spec}${sep}` }]
  })
}

/**
 * A folder of wikifarm's own compiled code (dist/plugins/x/) and the TypeScript it came from
 * (plugins/x/): with --enable-source-maps (in NODE_OPTIONS, say) stacks name the sources.
 */
function withSourceTwin(name: string, dir: string): PluginSource[] {
  const compiled = join(PACKAGE_ROOT, 'dist') + sep
  return dir.startsWith(compiled)
    ? [
        { name, dir },
        { name, dir: join(PACKAGE_ROOT, dir.slice(compiled.length)) },
      ]
    : [{ name, dir }]
}

/** The plugin whose code is nearest the top of the error's stack, or null. */
export function blamePlugin(err: unknown, sources: PluginSource[]): string | null {
  const stack = err instanceof Error ? err.stack ?? '' : ''
  for (const line of stack.split('\n').slice(1)) {
    const frame = line.includes('file://') ? line.replace(/file:\/\//g, '') : line
    for (const { name, dir } of sources) if (frame.includes(dir)) return name
  }
  return null
}

export interface FaultLog {
  error(obj: object, msg: string): void
  fatal(obj: object, msg: string): void
}

/** The log line for an error nobody caught: which plugin, if any, and what happens next. */
export function describeFault(
  kind: 'rejection' | 'exception',
  err: unknown,
  sources: PluginSource[],
): { fields: object; msg: string } {
  const plugin = blamePlugin(err, sources)
  const where = plugin ? `in plugin ${plugin}` : 'of unknown origin'
  const then = kind === 'rejection' ? 'the farm keeps serving' : 'closing the farm'
  return {
    fields: {
      err,
      plugin,
      code: kind === 'rejection' ? 'WIKIFARM_ERR_UNHANDLED_REJECTION' : 'WIKIFARM_ERR_UNCAUGHT_EXCEPTION',
    },
    msg: `${kind === 'rejection' ? 'unhandled rejection' : 'uncaught exception'} ${where}: ${then}`,
  }
}

/**
 * Logs unhandled rejections and keeps serving (instead of Node's default, which throws).
 * Returns the function that removes the handler.
 */
export function keepServingOnRejection(log: FaultLog, sources: () => PluginSource[]): () => void {
  const onRejection = (reason: unknown): void => {
    const { fields, msg } = describeFault('rejection', reason, sources())
    log.error(fields, msg)
  }
  process.on('unhandledRejection', onRejection)
  return () => { process.off('unhandledRejection', onRejection) }
}
