// Every error the kernel raises, each a coded factory in the style of fastify's FST_ERR_*.
// Clients get `{ error, code }` (plus `reason` where one applies); operators grep logs by code.
import createError from '@fastify/error'

export interface WikifarmError extends Error {
  code: string
  statusCode: number
  reason?: string
}

type Factory<A extends unknown[]> = new (...args: A) => WikifarmError

function coded<A extends unknown[] = [string?]>(code: string, message: string, statusCode: number): Factory<A> {
  return createError(code, message, statusCode) as unknown as Factory<A>
}

export const ERR_BAD_HOST = coded<[string]>('WIKIFARM_ERR_BAD_HOST', 'Invalid Host header: %s', 400)
export const ERR_UNKNOWN_SITE = coded<[string]>('WIKIFARM_ERR_UNKNOWN_SITE', 'No wiki is served for host %s', 404)
export const ERR_BAD_URL = coded<[string]>('WIKIFARM_ERR_BAD_URL', 'Malformed URL: %s', 400)
export const ERR_URL_TOO_LONG = coded<[string]>(
  'WIKIFARM_ERR_URL_TOO_LONG',
  'A path segment of the URL is too long: %s',
  414,
)
export const ERR_BAD_SLUG = coded<[string]>('WIKIFARM_ERR_BAD_SLUG', 'Invalid page slug: %s', 400)
export const ERR_BAD_ITEM_ID = coded<[string]>('WIKIFARM_ERR_BAD_ITEM_ID', 'Invalid item id: %s', 400)
export const ERR_PAGE_NOT_FOUND = coded<[string]>('WIKIFARM_ERR_PAGE_NOT_FOUND', 'Page not found: %s', 404)
export const ERR_PAGE_EXISTS = coded<[string]>('WIKIFARM_ERR_PAGE_EXISTS', 'Page already exists: %s', 409)
export const ERR_ITEM_NOT_FOUND = coded<[string]>('WIKIFARM_ERR_ITEM_NOT_FOUND', 'Item not found: %s', 409)
export const ERR_BAD_ACTION = coded<[string]>('WIKIFARM_ERR_BAD_ACTION', 'Invalid action: %s', 400)
export const ERR_UNKNOWN_ACTION = coded<[string]>('WIKIFARM_ERR_UNKNOWN_ACTION', 'Unknown action type: %s', 400)
export const ERR_BAD_JSON = coded<[string]>('WIKIFARM_ERR_BAD_JSON', 'Malformed JSON: %s', 400)
export const ERR_VALIDATION = coded<[string]>('WIKIFARM_ERR_VALIDATION', 'Invalid request: %s', 400)
export const ERR_PAYLOAD_TOO_LARGE = coded<[number]>(
  'WIKIFARM_ERR_PAYLOAD_TOO_LARGE',
  'Request body exceeds %s bytes',
  413,
)
export const ERR_TOO_LARGE = coded<[string]>('WIKIFARM_ERR_TOO_LARGE', 'Too large: %s', 413)
export const ERR_UNSUPPORTED_MEDIA = coded<[string]>(
  'WIKIFARM_ERR_UNSUPPORTED_MEDIA',
  'Unsupported content type: %s',
  415,
)
export const ERR_NOT_OWNER = coded<[string]>('WIKIFARM_ERR_NOT_OWNER', 'Only the owner of this wiki may %s', 403)
export const ERR_NOT_ADMIN = coded<[]>('WIKIFARM_ERR_NOT_ADMIN', 'Only the farm administrator may do this', 403)
export const ERR_READ_ONLY = coded<[]>(
  'WIKIFARM_ERR_READ_ONLY',
  'This wiki is unclaimed and read-only: claim it first',
  403,
)
export const ERR_FOREIGN_ORIGIN = coded<[string]>(
  'WIKIFARM_ERR_FOREIGN_ORIGIN',
  'Request from a foreign origin refused: %s',
  403,
)
export const ERR_ALREADY_CLAIMED = coded<[]>('WIKIFARM_ERR_ALREADY_CLAIMED', 'This wiki has already been claimed', 409)
export const ERR_BAD_SECRET = coded<[]>(
  'WIKIFARM_ERR_BAD_SECRET',
  'That secret does not match the owner of this wiki',
  401,
)
export const ERR_NOT_CLAIMED = coded<[]>('WIKIFARM_ERR_NOT_CLAIMED', 'This wiki has no owner yet', 409)
export const ERR_CLIENT_FILE_NOT_FOUND = coded<[string]>(
  'WIKIFARM_ERR_CLIENT_FILE_NOT_FOUND',
  'No such client file: %s',
  404,
)
export const ERR_ROUTE_NOT_FOUND = coded<[string]>('WIKIFARM_ERR_ROUTE_NOT_FOUND', 'No route for %s', 404)
export const ERR_RATE_LIMITED = coded<[string]>('WIKIFARM_ERR_RATE_LIMITED', 'Too many requests: %s', 429)
export const ERR_TOO_MANY_CONNECTIONS =
  coded<[string]>('WIKIFARM_ERR_TOO_MANY_CONNECTIONS', 'Too many connections: %s', 429)
export const ERR_CLOSING = coded<[]>('WIKIFARM_ERR_CLOSING', 'The farm is shutting down', 503)
export const ERR_CONFIG = coded<[string]>('WIKIFARM_ERR_CONFIG', '%s', 2)

export const ERR_PLUGIN_CONFIG = coded<[string]>('WIKIFARM_ERR_PLUGIN_CONFIG', 'Plugin configuration: %s', 500)
export const ERR_PLUGIN_NOT_ENABLED = coded<[string]>(
  'WIKIFARM_ERR_PLUGIN_NOT_ENABLED',
  'Plugin not enabled here: %s',
  404,
)
export const ERR_PLUGIN_UNAVAILABLE = coded<[string]>(
  'WIKIFARM_ERR_PLUGIN_UNAVAILABLE',
  'Plugin %s is unavailable',
  503,
)
/** A one-node plugin another node owns (or none does now), when this node does not forward to it. */
export const ERR_PLUGIN_ELSEWHERE = coded<[string]>(
  'WIKIFARM_ERR_PLUGIN_ELSEWHERE',
  'Plugin %s runs on another node of the farm',
  503,
)
/** A forwarding header no node of the farm signed: a visitor's forgery, or a node with another secret. */
export const ERR_FORGED_FORWARD = coded<[]>(
  'WIKIFARM_ERR_FORGED_FORWARD',
  'Refused: the request claims to be forwarded by a node of this farm, and is not',
  403,
)
export const ERR_PLUGIN_FAILED = coded<[string]>(
  'WIKIFARM_ERR_PLUGIN_FAILED',
  'Plugin %s failed to handle the request',
  500,
)
export const ERR_PLUGIN_TIMEOUT = coded<[string]>(
  'WIKIFARM_ERR_PLUGIN_TIMEOUT',
  'Plugin %s did not answer in time',
  504,
)
export const ERR_PLUGIN_ROUTE = coded<[string]>('WIKIFARM_ERR_PLUGIN_ROUTE_NOT_FOUND', 'No plugin route for %s', 404)
export const ERR_LEGACY_REFUSED = coded<[string]>('WIKIFARM_ERR_LEGACY_REFUSED', 'Refused by the farm: %s', 403)
export const ERR_LENGTH_REQUIRED = coded<[string]>(
  'WIKIFARM_ERR_LENGTH_REQUIRED', 'A Content-Length is required: %s', 411)

export function isWikifarmError(err: unknown): err is WikifarmError {
  return err instanceof Error && typeof (err as WikifarmError).code === 'string' &&
    (err as WikifarmError).code.startsWith('WIKIFARM_ERR_')
}
