// The error a websocket client gets in band, written once for the kernel's socket hub and the
// isolation host (which reports an isolated plugin's failed message handler the same way).
import type { Envelope } from '../plugin-api.js'

/** What a client is told when a plugin's message handler fails. */
export const HANDLER_FAILED = {
  code: 'WIKIFARM_ERR_PLUGIN_FAILED',
  error: 'the plugin failed to handle this message',
} as const

/**
 * The error message for a connection of this codec: a text socket has no envelope, so its
 * clients get one line they can tell apart; a json socket gets an error envelope, answering `id`.
 */
export function errorMessage(codec: 'text' | 'json', id: string | undefined, code: string, error: string): unknown {
  if (codec === 'text') return `error ${code}: ${error}`
  const envelope: Envelope = { type: 'error', data: { error, code } }
  if (id !== undefined) envelope.id = id
  return envelope
}
