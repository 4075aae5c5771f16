// What the kernel knows of a plugin before it launches it: its definition without the launch
// function. An in-process plugin's comes from its module; an isolated plugin's is read inside its
// worker or child and arrives as untrusted data, checked here field by field before the registry
// applies the rules every plugin meets (supported API version, requested trust, isolation
// modes, options against their schema).
import { Compile } from 'typebox/compile'
import type { TSchema } from 'typebox'
import type { Placement, PluginDefinition } from '../plugin-api.js'
import { ISOLATION_MODES, type IsolationMode } from './isolation/channel.js'

/** The definition without its launch function, its API version stamped (definePlugin does it). */
export type PluginDescription = Omit<PluginDefinition, 'launch' | 'apiVersion'> & { apiVersion: number }

/** Where a plugin may run in a farm of many nodes (plugin-api.ts Placement). */
export const PLACEMENTS: readonly Placement[] = ['every-node', 'one-node']

/** A schema from an isolated plugin is data it chose: a hostile one must not cost the kernel much. */
const MAX_SCHEMA_CHARS = 64 * 1024

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * An isolated plugin's description, from what its sandbox sent; throws the reason it is refused.
 * Name, API version and trust are checked by the registry with the same reasons as in-process.
 */
export function describedPlugin(data: unknown): PluginDescription {
  if (!isRecord(data)) throw new Error('its definition is not an object')
  const { name, apiVersion, trust, options, isolationModes, placement } = data
  if (typeof name !== 'string' || name.length > 100) throw new Error('its definition has no name')
  if (typeof apiVersion !== 'number') throw new Error('its definition has no apiVersion')
  const description: PluginDescription = { name, apiVersion, trust: trust as PluginDescription['trust'] }
  if (options !== undefined) {
    if (!isRecord(options)) throw new Error('its options schema is not a JSON Schema object')
    if (JSON.stringify(options).length > MAX_SCHEMA_CHARS) {
      throw new Error(`its options schema is larger than ${MAX_SCHEMA_CHARS} characters`)
    }
    try {
      Compile(options as TSchema)
    } catch (err) {
      throw new Error(`its options schema does not compile: ${(err as Error).message}`, { cause: err })
    }
    description.options = options as TSchema
  }
  if (isolationModes !== undefined) {
    if (!Array.isArray(isolationModes) || !isolationModes.every((m) => ISOLATION_MODES.includes(m as IsolationMode))) {
      throw new Error(`its isolationModes must list some of ${ISOLATION_MODES.join(', ')}`)
    }
    description.isolationModes = isolationModes as IsolationMode[]
  }
  if (placement !== undefined) {
    if (!PLACEMENTS.includes(placement as Placement))
      throw new Error(`its placement must be ${PLACEMENTS.join(' or ')}`)
    description.placement = placement as Placement
  }
  return description
}

/** Did a relaunched plugin describe itself as it did when the farm started? */
export function sameDescription(a: PluginDescription, b: PluginDescription): boolean {
  const plain = (d: PluginDescription): string => JSON.stringify([d.name, d.apiVersion, d.trust, d.options ?? null,
    d.isolationModes ?? null, d.placement ?? 'every-node'])
  return plain(a) === plain(b)
}

