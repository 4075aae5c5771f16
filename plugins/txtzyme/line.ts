// Validation of one Txtzyme line: the atomic packet. A line the firmware would misread (a lost
// `_` swallowing the sentinel, a `{` without `}` running off the buffer) is refused here.
import { CodedError } from './coded-error.js'
import { LINE_BUFFER } from './simulator.js'

/** Room kept at the end of the device buffer for the sentinel `_<nonce>_`. */
export const SENTINEL_ROOM = 32
/** The longest line a client may send. */
export const MAX_LINE = LINE_BUFFER - 1 - SENTINEL_ROOM

export type LineErrorCode =
  | 'TXTZYME_LINE_EMPTY'
  | 'TXTZYME_LINE_TOO_LONG'
  | 'TXTZYME_LINE_NOT_PRINTABLE'
  | 'TXTZYME_LINE_UNBALANCED_TEXT'
  | 'TXTZYME_LINE_UNBALANCED_LOOP'
  | 'TXTZYME_LINE_NESTED_LOOP'
  | 'TXTZYME_LINE_BRACE_IN_TEXT'

export class LineError extends CodedError<LineErrorCode> {}

/**
 * Checks one line and returns it without its line ending; throws a LineError saying what is wrong.
 * Rules: printable ASCII only; an even number of `_` (text is `_..._`); `{}` balanced, not
 * nested, and not inside text (the firmware's loop scan would stop at a `}` in text); at most
 * MAX_LINE characters, so the sentinel still fits in the device's buffer.
 */
export function validateLine(raw: string): string {
  const line = raw.replace(/\r?\n$|\r$/, '')
  if (line.length === 0) throw new LineError('TXTZYME_LINE_EMPTY', 'empty line: send at least one command')
  if (line.length > MAX_LINE) {
    throw new LineError(
      'TXTZYME_LINE_TOO_LONG',
      `line of ${line.length} characters: at most ${MAX_LINE} fit in the device's buffer with the sentinel`,
    )
  }
  let inText = false
  let inLoop = false
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string
    const code = line.charCodeAt(i)
    if (code < 0x20 || code > 0x7e) {
      throw new LineError(
        'TXTZYME_LINE_NOT_PRINTABLE',
        `character ${JSON.stringify(ch)} at ${i} is not printable ASCII (one line per packet; no control characters)`,
      )
    }
    if (ch === '_') inText = !inText
    else if (inText && (ch === '{' || ch === '}')) {
      throw new LineError(
        'TXTZYME_LINE_BRACE_IN_TEXT',
        `'${ch}' at ${i} is inside _text_: the firmware would take it for a loop brace`,
      )
    } else if (ch === '{') {
      if (inLoop)
        throw new LineError(
          'TXTZYME_LINE_NESTED_LOOP',
          `'{' at ${i} opens a loop inside a loop: Txtzyme loops do not nest`,
        )
      inLoop = true
    } else if (ch === '}') {
      if (!inLoop) throw new LineError('TXTZYME_LINE_UNBALANCED_LOOP', `'}' at ${i} closes no loop`)
      inLoop = false
    }
  }
  if (inText)
    throw new LineError('TXTZYME_LINE_UNBALANCED_TEXT', "odd number of '_': close the _text_ on the same line")
  if (inLoop) throw new LineError('TXTZYME_LINE_UNBALANCED_LOOP', "'{' without '}': close the loop on the same line")
  return line
}
