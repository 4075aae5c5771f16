// The coded JSON error a legacy request is answered with when the plugin cannot answer it.
import type { ServerResponse } from 'node:http'

export interface Coded { message: string; code: string; statusCode: number; reason?: string }

/** The coded JSON error body the kernel answers with, on a response not yet started. */
export function sendCoded(res: ServerResponse, error: Coded): void {
  if (res.headersSent || res.writableEnded) {
    if (!res.writableEnded) res.end()
    return
  }
  const body: Record<string, unknown> = { error: error.message, code: error.code }
  if (error.reason !== undefined) body.reason = error.reason
  res.statusCode = error.statusCode
  res.setHeader('content-type', 'application/json; charset=utf-8')
  res.end(JSON.stringify(body))
}
