// The operator's options for a plugin (config `plugins.<name>.options`), checked against the
// schema the plugin declares. A key the schema does not name is refused for every plugin,
// built-in or not, whatever the schema says of additional properties: a typo such as
// "simulater" would otherwise be dropped silently and the plugin run with its default.
import type { TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { suggestion } from '../did-you-mean.js'
import { validationMessage } from '../../schemas/validation.js'

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
  const value = validator.Default(structuredClone(options ?? {}))
  if (validator.Check(value)) return null
  return validationMessage(validator.Errors(value))
}
