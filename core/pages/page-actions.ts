// Applying one journal action to a page: pure functions, no I/O, so the store can run them
// inside its one-writer-per-page section and tests can run them alone.
import secureJson from 'secure-json-parse'
import { ACTION_TYPES, actionValidators, type Action, type ActionType } from '../../schemas/action.js'
import { isItemId, type JournalEntry, type Page, type StoryItem } from '../../schemas/page.js'
import { validationMessage } from '../../schemas/validation.js'
import {
  ERR_BAD_ACTION, ERR_BAD_ITEM_ID, ERR_BAD_JSON, ERR_ITEM_NOT_FOUND, ERR_PAGE_EXISTS, ERR_PAGE_NOT_FOUND, ERR_TOO_LARGE,
  ERR_UNKNOWN_ACTION, type WikifarmError,
} from '../errors.js'

const MAX_ERRORS_SHOWN = 3
const MAX_DEPTH = 100

/** Is any value inside `root` more than `max` objects or arrays deep? Iterative, so it cannot overflow. */
function deeperThan(root: object, max: number): boolean {
  const stack: Array<[unknown, number]> = [[root, 1]]
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [value, depth] = next
    if (depth > max) return true
    for (const child of Object.values(value as object)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1])
    }
  }
  return false
}

/** Parses the `action` form field (or a JSON body) with prototype-poisoning protection, then validates it. */
export function parseAction(raw: unknown): Action {
  let value: unknown = raw
  if (typeof raw === 'string') {
    try {
      value = secureJson.parse(raw, undefined, { protoAction: 'error', constructorAction: 'error' })
    } catch (err) {
      throw new ERR_BAD_JSON((err as Error).message)
    }
  }
  return validateAction(value)
}

export function validateAction(value: unknown): Action {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ERR_BAD_ACTION('expected a JSON object')
  }
  // JSON.parse takes any depth, but cloning and writing the page recurse: thousands of
  // nested arrays would overflow the stack there (a 500) instead of being refused here.
  if (deeperThan(value, MAX_DEPTH)) throw new ERR_BAD_ACTION(`nested more than ${MAX_DEPTH} levels deep`)
  const type = (value as { type?: unknown }).type
  if (typeof type !== 'string') throw new ERR_BAD_ACTION('missing "type"')
  if (!(ACTION_TYPES as string[]).includes(type)) throw new ERR_UNKNOWN_ACTION(type.slice(0, 40))
  // Item ids get their own code: a client generating bad ids wants to know it is the ids.
  for (const [field, id] of itemIdsOf(value as Record<string, unknown>)) {
    if (typeof id === 'string' && !isItemId(id))
      throw new ERR_BAD_ITEM_ID(`${field} ${JSON.stringify(id.slice(0, 40))}`)
  }
  const validator = actionValidators[type as ActionType]
  if (!validator.Check(value)) {
    throw new ERR_BAD_ACTION(`${type}: ${validationMessage(validator.Errors(value), MAX_ERRORS_SHOWN)}`)
  }
  return value as Action
}


/** The item ids an action names: its own, its item's, `after` and the move order. */
function itemIdsOf(action: Record<string, unknown>): Array<[string, unknown]> {
  const ids: Array<[string, unknown]> = [['id', action.id], ['after', action.after]]
  const item = action.item
  if (action.type !== 'create' && item !== null && typeof item === 'object')
    ids.push(['item.id', (item as { id?: unknown }).id])
  if (Array.isArray(action.order)) action.order.forEach((id, i) => ids.push([`order[${i}]`, id]))
  return ids
}

function indexOfItem(story: StoryItem[], id: string): number {
  return story.findIndex((item) => item.id === id)
}

function requireItem(story: StoryItem[], id: string): number {
  const index = indexOfItem(story, id)
  if (index < 0) throw new ERR_ITEM_NOT_FOUND(id)
  return index
}

/** The journal entry an action leaves: the action itself, dated, without its fork markers. */
export function journalEntry(action: Action, now: number): JournalEntry {
  const { fork: _fork, forkPage: _forkPage, ...entry } = action
  return { ...entry, date: typeof action.date === 'number' ? action.date : now }
}

/** Does this action replace the page with one copied from another site? */
export function forksFrom(action: Action): string | null {
  if (action.fork) return action.fork
  if (action.type === 'fork') return action.site ?? null
  return null
}

/**
 * Returns the page after `action`; never mutates its inputs. `base` is the page the action
 * applies to: the stored page (or default page), or for a fork the page copied from the other
 * site; null when there is none. Throws coded errors for every action that cannot apply.
 */
export function applyAction(base: Page | null, action: Action, slug: string, now: number): Page {
  if (action.type === 'create' && !action.fork) {
    if (base) throw new ERR_PAGE_EXISTS(slug)
    const { story, ...rest } = structuredClone(action.item)
    const page: Page = { ...rest, title: action.item.title, story: story ?? [] }
    page.journal = [...(Array.isArray(page.journal) ? page.journal : []), journalEntry(action, now)]
    return page
  }
  if (!base) throw new ERR_PAGE_NOT_FOUND(slug)
  const page = structuredClone(base)
  const journal = page.journal ?? []
  page.journal = journal
  // An action carrying `fork` records where the page came from just before the action itself.
  if (action.fork) {
    const date = typeof action.date === 'number' ? action.date - 1 : now
    journal.push({ type: 'fork', site: action.fork, date })
  }
  const story = page.story
  switch (action.type) {
    case 'create':
      break
    case 'add': {
      if (indexOfItem(story, action.item.id) >= 0) {
        throw new ERR_BAD_ACTION(`add: item ${action.item.id} already exists`)
      }
      // As in the reference server: after the item named by `after`, else at the top.
      const at = action.after === undefined ? 0 : indexOfItem(story, action.after) + 1
      story.splice(at, 0, action.item)
      break
    }
    case 'edit':
      story[requireItem(story, action.id)] = action.item
      break
    case 'remove':
      story.splice(requireItem(story, action.id), 1)
      break
    case 'move': {
      // The new order must be a permutation of the story, or the move would drop items.
      const byId = new Map(story.map((item) => [item.id, item]))
      const seen = new Set(action.order)
      if (seen.size !== action.order.length || action.order.length !== story.length ||
        action.order.some((id) => !byId.has(id))) {
        throw new ERR_ITEM_NOT_FOUND(`move order does not match the page's ${story.length} items; reload the page`)
      }
      requireItem(story, action.id)
      page.story = action.order.map((id) => byId.get(id) as StoryItem)
      break
    }
    case 'fork':
      break
  }
  journal.push(journalEntry(action, now))
  return page
}

/** The size caps of page writes, in bytes of JSON (UTF-8). */
export interface PageLimits {
  /** One story item, as an action carries it. */
  itemBytes: number
  /** A whole page, journal included. */
  pageBytes: number
  /** One action, as the client sends it. */
  actionBytes: number
}

export type Capped = keyof PageLimits

const CAP_FLAG: Record<Capped, string> = { itemBytes: 'itemLimit', pageBytes: 'pageLimit', actionBytes: 'actionLimit' }
const CAP_NAME: Record<Capped, string> = { itemBytes: 'item', pageBytes: 'page', actionBytes: 'action' }

/** The 413 for a cap passed; `reason` names the cap, so a client can tell which one. */
export function tooLarge(cap: Capped, bytes: number, limit: number): WikifarmError {
  const error = new ERR_TOO_LARGE(
    `the ${CAP_NAME[cap]} is ${bytes} bytes of JSON, over the cap of ${limit} (${CAP_FLAG[cap]})`)
  error.reason = CAP_NAME[cap]
  return error
}

export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '')
}

/** The story items an action brings: an added or edited item, a created page's story. */
function itemsBrought(action: Action): unknown[] {
  if (action.type === 'add' || action.type === 'edit') return [action.item]
  if (action.type === 'create' && Array.isArray(action.item.story)) return action.item.story
  return []
}

/** Refuses (413) an action over the action cap, or bringing an item over the item cap; else its size. */
export function checkActionSize(action: Action, limits: PageLimits): number {
  const bytes = jsonBytes(action)
  if (bytes > limits.actionBytes) throw tooLarge('actionBytes', bytes, limits.actionBytes)
  for (const item of itemsBrought(action)) {
    const itemBytes = jsonBytes(item)
    if (itemBytes > limits.itemBytes) throw tooLarge('itemBytes', itemBytes, limits.itemBytes)
  }
  return bytes
}

/** What an old journal entry keeps of an item once its payload is dropped. */
function compactItem(item: Record<string, unknown>): Record<string, unknown> {
  return { type: 'paragraph', id: item.id, text: JOURNAL_COMPACTED }
}

export const JOURNAL_COMPACTED =
  '(This version was dropped from the journal to keep the page under the farm\'s size cap.)'

/** The entry with its item's payload dropped, or null when that would save nothing. */
function compactEntry(entry: JournalEntry): JournalEntry | null {
  const item = entry.item
  if (item === null || typeof item !== 'object' || Array.isArray(item)) return null
  const record = item as Record<string, unknown>
  const smaller = entry.type === 'create'
    ? { ...entry, item: { title: record.title } }
    : { ...entry, item: compactItem(record) }
  return jsonBytes(smaller) < jsonBytes(entry) ? smaller : null
}

/**
 * Keeps a page under the page cap. The journal is compacted, not refused: the oldest entries
 * lose their items' payloads first (an edit keeps its item's id, as a short paragraph saying
 * why), so every entry stays and the reference client still replays the journal into
 * revisions; the newest entry, the action just applied, always keeps its item. A page whose
 * story alone is over the cap is refused (413) and the stored page stays as it was.
 * Mutates `page`'s journal: pass a page of your own (applyAction returns a fresh one).
 */
export function fitPage(page: Page, limits: PageLimits): Page {
  let bytes = jsonBytes(page)
  const journal = page.journal ?? []
  for (let i = 0; i < journal.length - 1 && bytes > limits.pageBytes; i++) {
    const entry = journal[i] as JournalEntry
    const compacted = compactEntry(entry)
    if (compacted === null) continue
    bytes += jsonBytes(compacted) - jsonBytes(entry)
    journal[i] = compacted
  }
  if (bytes > limits.pageBytes) throw tooLarge('pageBytes', bytes, limits.pageBytes)
  return page
}
