// The operator's options for a plugin (config `plugins.<name>.options`), checked against the
// schema the plugin declares. A key the schema does not name is refused for every plugin,
// built-in or not, whatever the schema says of additional properties: a typo such as
// "simulater" would otherwise be dropped silently and the plugin run with its default.
// Defaults come from the schema's `default`s, whether it is a TypeBox schema (in-process) or
// the plain JSON Schema an isolated plugin's sandbox sent.
import type { TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { suggestion } from '../did-you-mean.js'
import { validationMessage } from '../../schemas/validation.js'

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The names an object schema declares, or null when it declares none (or is not an object). */
function declaredKeys(schema: TSchema): string[] | null {
  const properties = (schema as { properties?: unknown }).properties
  if (properties === null || typeof properties !== 'object') return null
  // A schema that opts in to more keys (`additionalProperties: true` or a schema) takes them.
  const additional = (schema as { additionalProperties?: unknown }).additionalProperties
  if (additional !== undefined && additional !== false) return null
  return Object.keys(properties)
}

/** Why `options` do not fit `schema` (one line naming the key), or null when they do. */
export function optionsProblem(schema: TSchema, options: unknown): string | null {
  const keys = declaredKeys(schema)
  if (keys && options !== null && typeof options === 'object' && !Array.isArray(options)) {
    for (const key of Object.keys(options)) {
      if (keys.includes(key)) continue
      const hint = suggestion(key, keys, '')
      return `unknown option "${key}"${hint ? `; did you mean "${hint}"?` : ` (it takes ${keys.join(', ')})`}`
    }
  }
  const validator = Compile(schema)
  const value = optionsWithDefaults(schema, options)
  if (validator.Check(value)) return null
  return validationMessage(validator.Errors(value))
}

/**
 * JSON Schema `default`s of object properties, filled in where the value lacks them, at every
 * depth. TypeBox's own Default() follows the kinds TypeBox keeps in non-enumerable keys, which
 * do not cross an isolation boundary: an isolated plugin's schema arrives as plain JSON Schema,
 * and this gives it the defaults an in-process plugin gets from TypeBox.
 */
function fillDefaults(schema: unknown, value: unknown): unknown {
  if (!isRecord(schema) || !isRecord(schema.properties) || !isRecord(value)) return value
  for (const [key, property] of Object.entries(schema.properties)) {
    if (!isRecord(property)) continue
    if (!Object.hasOwn(value, key) && property.default !== undefined) value[key] = structuredClone(property.default)
    if (Object.hasOwn(value, key)) value[key] = fillDefaults(property, value[key])
  }
  return value
}

/** The operator's options for a plugin with its schema's defaults applied (not yet checked). */
export function optionsWithDefaults(schema: TSchema, options: unknown): unknown {
  return fillDefaults(schema, Compile(schema).Default(structuredClone(options ?? {})))
}
