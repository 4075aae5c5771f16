// The one formatter of validation messages: what a client, a plugin author or an operator reads
// when a value does not match its TypeBox schema (a request, a websocket message, a journal
// action, a plugin's options). Each line names the field as a JSON pointer and the expected
// shape: `/type: must be "hello"`, `/count: must be >= 1`, `/extra: is not allowed`.

/** The part of a TypeBox error this reads (typebox/compile's Errors() yields these). */
export interface SchemaError {
  keyword: string
  schemaPath: string
  instancePath: string
  params: Record<string, unknown>
  message: string
}

const where = (path: string) => path || '/'
const ALTERNATIVE = /^(.*)\/anyOf\/\d+$/

/** A shape said in one word or value (`string`, `"hello"`), or null for anything larger. */
function simpleShape(e: SchemaError): string | null {
  if (e.keyword === 'const') return JSON.stringify(e.params.allowedValue)
  if (e.keyword === 'type' && typeof e.params.type === 'string') return e.params.type
  return null
}

/** One line per problem, at most `max` of them, joined with '; '. */
export function validationMessage(errors: Iterable<SchemaError>, max = 5): string {
  const all = [...errors]
  // A union's alternatives each report their own miss; when each is a type or a constant, say
  // the choice once ('must be "a" or "b"') instead of a line per alternative and one for anyOf.
  const choices = new Map<string, (string | null)[]>()
  for (const e of all) {
    const union = ALTERNATIVE.exec(e.schemaPath)?.[1]
    if (union !== undefined) choices.set(union, [...(choices.get(union) ?? []), simpleShape(e)])
  }
  // An alternative that failed deeper inside (an object's field) makes its union not simple.
  for (const e of all) {
    for (const union of choices.keys()) {
      if (e.schemaPath.startsWith(`${union}/anyOf/`) && !ALTERNATIVE.test(e.schemaPath)) choices.get(union)?.push(null)
    }
  }
  const simple = (union: string): string[] | null => {
    const shapes = choices.get(union) ?? []
    return shapes.length > 0 && shapes.every((s) => s !== null) ? (shapes as string[]) : null
  }
  const lines: string[] = []
  for (const e of all) {
    const union = ALTERNATIVE.exec(e.schemaPath)?.[1]
    if (union !== undefined && simple(union)) continue
    const path = e.instancePath
    switch (e.keyword) {
      case 'const':
        lines.push(`${where(path)}: must be ${JSON.stringify(e.params.allowedValue)}`)
        break
      case 'anyOf': {
        const shapes = simple(e.schemaPath)
        lines.push(`${where(path)}: ${shapes ? `must be ${shapes.join(' or ')}` : e.message}`)
        break
      }
      case 'required':
        for (const name of (e.params.requiredProperties as string[] | undefined) ?? [])
          lines.push(`${path}/${name}: is required`)
        break
      case 'additionalProperties':
        for (const name of (e.params.additionalProperties as string[] | undefined) ?? [])
          lines.push(`${path}/${name}: is not allowed`)
        break
      case 'boolean':
        // `additionalProperties: false` reports each extra property twice: this is the second.
        if (e.schemaPath.endsWith('/additionalProperties')) break
        lines.push(`${where(path)}: ${e.message}`)
        break
      default:
        lines.push(`${where(path)}: ${e.message}`)
    }
  }
  return [...new Set(lines)].slice(0, max).join('; ')
}
