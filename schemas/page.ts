// The federated-wiki page as stored on disk and served as /<slug>.json.
// Unknown properties are kept: pages written by other servers and plugins carry their own.
import { Type, type Static } from 'typebox'
import { Compile } from 'typebox/compile'

// The one copy of the slug and item-id rules: every check in core/ and plugins/ uses these.
/** A slug's characters, unanchored, for patterns that embed a slug (push keys, lineups). */
export const SLUG_BODY = '[a-z0-9-]{1,100}'
/** An item id's characters, unanchored: 16 hex digits. */
export const ITEM_ID_BODY = '[0-9a-f]{16}'
export const SLUG_PATTERN = `^${SLUG_BODY}$`
export const ITEM_ID_PATTERN = `^${ITEM_ID_BODY}$`
const SLUG = new RegExp(SLUG_PATTERN)
const ITEM_ID = new RegExp(ITEM_ID_PATTERN)

/** A page slug: lowercase letters, digits and dashes, 1 to 100 of them. */
export function isSlug(value: unknown): boolean {
  return typeof value === 'string' && SLUG.test(value)
}

/** An item id as new actions must carry it: 16 hex digits. */
export function isItemId(value: unknown): boolean {
  return typeof value === 'string' && ITEM_ID.test(value)
}

export const Slug = Type.String({ pattern: SLUG_PATTERN })
export const ItemId = Type.String({ pattern: ITEM_ID_PATTERN })

// Stored items may carry legacy ids; ids in new actions are checked by schemas/action.ts.
export const StoryItem = Type.Object({
  type: Type.String({ minLength: 1, maxLength: 100 }),
  id: Type.String({ minLength: 1, maxLength: 100 }),
  text: Type.Optional(Type.String()),
}, { additionalProperties: true })
/** Items keep every property a client plugin gave them. */
export type StoryItem = Static<typeof StoryItem> & { [key: string]: unknown }

export const JournalEntry = Type.Object({
  type: Type.String({ minLength: 1, maxLength: 40 }),
  date: Type.Optional(Type.Union([Type.Number(), Type.String()])),
}, { additionalProperties: true })
export type JournalEntry = Static<typeof JournalEntry> & { [key: string]: unknown }

export const Page = Type.Object({
  title: Type.String({ maxLength: 1000 }),
  story: Type.Array(StoryItem),
  journal: Type.Optional(Type.Array(JournalEntry)),
}, { additionalProperties: true })
export type Page = { title: string; story: StoryItem[]; journal?: JournalEntry[]; [key: string]: unknown }

const compiledPage = Compile(Page)
export const PageValidator = {
  Check: (value: unknown): value is Page => compiledPage.Check(value),
  Errors: (value: unknown) => compiledPage.Errors(value),
}
