// The federated-wiki page as stored on disk and served as /<slug>.json.
// Unknown properties are kept: pages written by other servers and plugins carry their own.
import { Type, type Static } from 'typebox'
import { Compile } from 'typebox/compile'

export const SLUG_PATTERN = '^[a-z0-9-]{1,100}$'
export const ITEM_ID_PATTERN = '^[0-9a-f]{16}$'

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
