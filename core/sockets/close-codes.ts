// The one table of websocket close codes: the kernel's connections, the isolation host that
// checks what a plugin asks for, and the plugin's side of the boundary all use this file (a
// leaf, so an isolated plugin's worker or child loads nothing else with it).

/** Every close code the kernel uses; docs/protocol.md explains each. */
export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
} as const

/** Close codes an endpoint may send (RFC 6455 §7.4, and the 3000-4999 range for applications). */
export function isSendableCloseCode(code: number): boolean {
  return Number.isInteger(code) && (code === 1000 || code === 1001 || code === 1003 ||
    (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999))
}

/** Throws what a plugin's `close()` with a code no peer may receive throws, on either side. */
export function assertSendableCloseCode(code: number): void {
  if (!isSendableCloseCode(code))
    throw new RangeError(`close code ${code} cannot be sent: use 1000, 1001, 1003, 1007-1014 or 3000-4999`)
}
