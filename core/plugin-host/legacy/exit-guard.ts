// process.exit from a legacy plugin (plugmatic's "restart" calls it) ends only that plugin.
// Legacy code runs in the farm's thread, so the call is recognised by the scope it runs in
// (AsyncLocalStorage: a request, a callback or timer started from one, or the plugin's start),
// refused with an exception that unwinds the plugin's handler, and reported to its owner, who
// marks the plugin failed. Calls from anywhere else exit as before.
import { legacyScope } from './scope.js'

export class LegacyExitRefused extends Error {
  constructor(plugin: string, code: unknown) {
    super(`legacy plugin ${plugin} called process.exit(${String(code ?? '')}): refused; the plugin is stopped`)
    this.name = 'LegacyExitRefused'
  }
}

type ExitReport = (plugin: string, code: unknown, instance: string | null) => void
const reporters = new Map<string, ExitReport>()
let installed = false

/** Routes process.exit calls made in `scope`'s plugin to `report` (one per farm, keyed by a farm id). */
export function guardExit(farmId: string, report: ExitReport): () => void {
  reporters.set(farmId, report)
  if (!installed) {
    installed = true
    const exit = process.exit.bind(process)
    process.exit = ((code?: number | string | null) => {
      const scope = legacyScope.getStore()
      if (!scope) return exit(code)
      reporters.get(scope.farm)?.(scope.plugin, code, scope.instance)
      throw new LegacyExitRefused(scope.plugin, code)
    }) as typeof process.exit
  }
  return () => { reporters.delete(farmId) }
}
