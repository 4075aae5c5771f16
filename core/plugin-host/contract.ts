// The kernel's side of the plugin contract: what it needs beside the SDK (core/plugin-api.ts)
// and no plugin author does. The guards recognise what the SDK builds by the registered
// symbols it brands them with, so a plugin package's own copy of `wikifarm/plugin` (another
// module instance, maybe another release) is recognised as well as the kernel's.
import type { TSchema } from 'typebox'
import {
  API_VERSION, type definePlugin, type PluginHttpError, type PluginInstance, type PluginReply, type PluginUnavailable,
} from '../plugin-api.js'

/** The plugin API major this kernel speaks (the one its own SDK stamps). */
export { API_VERSION }
/** Majors this kernel can launch. */
export const SUPPORTED_API_VERSIONS: readonly number[] = [1]

/** A definePlugin() result, from this copy of the SDK or another. */
export type DefinedPlugin<O extends TSchema = TSchema> = ReturnType<typeof definePlugin<O>>

/** A route with its schema types erased, as the kernel stores it. */
export type AnyRouteDeclaration = NonNullable<PluginInstance['routes']>[number]

// The same keys as the SDK's (core/plugin-api.ts); test/plugin-api-types.test.ts checks that
// these guards accept what the SDK builds and refuse look-alikes.
const UNAVAILABLE = Symbol.for('wikifarm.unavailable')
const HTTP_ERROR = Symbol.for('wikifarm.http-error')
const REPLY = Symbol.for('wikifarm.reply')
const DEFINED = Symbol.for('wikifarm.plugin')

function branded(value: unknown, brand: symbol): boolean {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true
}

export function isDefinedPlugin(value: unknown): value is DefinedPlugin {
  return branded(value, DEFINED)
}

export function isPluginUnavailable(value: unknown): value is PluginUnavailable {
  return value instanceof Error && branded(value, UNAVAILABLE)
}

export function isPluginHttpError(value: unknown): value is PluginHttpError {
  return value instanceof Error && branded(value, HTTP_ERROR)
}

export function isPluginReply(value: unknown): value is PluginReply {
  return branded(value, REPLY)
}
