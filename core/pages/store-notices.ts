// What a shared store (PostgreSQL) tells every node of the farm about each committed change:
// a notice on one channel (NOTIFY), sent inside the write's own transaction so it is delivered
// exactly when the change commits, and never when it rolls back. A notice carries ids (site,
// slug, status file, action type, node), never the page: a receiver reads what it needs from the
// store. PostgreSQL refuses a payload of 8000 bytes or more, so every notice is built to fit.
import { randomBytes } from 'node:crypto'

/** The channel every node LISTENs on. */
export const NOTICE_CHANNEL = 'wikifarm_events'
/** PostgreSQL's limit is 8000 bytes; a notice stays well under it. */
export const MAX_NOTICE_BYTES = 7900

/** What a page change's notice says of the action: its kind, item and date, never its item's text. */
export interface ActionNote {
  type: string
  id?: string
  date?: number
}

export type Notice =
  /** A page was written (created when it had no row before). */
  | { k: 'page'; n: string; s: string; p: string; c?: boolean; a?: ActionNote }
  /** A page was deleted (moved to the recycler). */
  | { k: 'delete'; n: string; s: string; p: string }
  /** A status file (owner.json, wikifarm-sessions.json, …) was written or removed. */
  | { k: 'status'; n: string; s: string; f: string }
  /** Something of the site changed that a notice could not name (its ids were too long): forget it all. */
  | { k: 'site'; n: string; s: string }
  /** A node's freshness barrier: its own echo tells it every earlier commit has reached it. */
  | { k: 'sync'; n: string; t: number }

/** A new node id: random, short, never reused by a restarted process. */
export function newNodeId(): string {
  return randomBytes(6).toString('base64url')
}

/** The notice as a payload under MAX_NOTICE_BYTES: details are dropped before the site is. */
export function encodeNotice(notice: Notice): string | null {
  let json = JSON.stringify(notice)
  if (Buffer.byteLength(json) <= MAX_NOTICE_BYTES) return json
  if ('s' in notice) {
    json = JSON.stringify({ k: 'site', n: notice.n, s: notice.s })
    if (Buffer.byteLength(json) <= MAX_NOTICE_BYTES) return json
  }
  // No site name is this long (hosts are at most 253 bytes), but a store used directly might
  // name one: nothing is sent, and no node learns of the change until it resynchronises.
  return null
}

const str = (v: unknown, max = MAX_NOTICE_BYTES): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= max

/** A payload read from the channel, checked field by field; null when it is not a notice of ours. */
export function parseNotice(payload: string): Notice | null {
  let v: unknown
  try {
    v = JSON.parse(payload)
  } catch {
    return null
  }
  if (typeof v !== 'object' || v === null) return null
  const o = v as Record<string, unknown>
  if (!str(o.n, 64)) return null
  switch (o.k) {
    case 'sync':
      return Number.isSafeInteger(o.t) ? { k: 'sync', n: o.n, t: o.t as number } : null
    case 'site':
      return str(o.s) ? { k: 'site', n: o.n, s: o.s } : null
    case 'status':
      return str(o.s) && str(o.f, 200) ? { k: 'status', n: o.n, s: o.s, f: o.f } : null
    case 'delete':
      return str(o.s) && str(o.p) ? { k: 'delete', n: o.n, s: o.s, p: o.p } : null
    case 'page': {
      if (!str(o.s) || !str(o.p)) return null
      const notice: Notice = { k: 'page', n: o.n, s: o.s, p: o.p }
      if (o.c === true) notice.c = true
      const a = o.a as Record<string, unknown> | undefined
      if (typeof a === 'object' && a !== null && str(a.type, 40)) {
        notice.a = { type: a.type }
        if (str(a.id, 40)) notice.a.id = a.id
        if (typeof a.date === 'number' && Number.isFinite(a.date)) notice.a.date = a.date
      }
      return notice
    }
    default:
      return null
  }
}

/** The part of an action a notice carries. */
export function actionNote(action: { type: string; id?: unknown; date?: unknown }): ActionNote {
  const note: ActionNote = { type: action.type.slice(0, 40) }
  if (typeof action.id === 'string') note.id = action.id.slice(0, 40)
  if (typeof action.date === 'number' && Number.isFinite(action.date)) note.date = action.date
  return note
}
