// Journal actions a client sends to PUT /page/:slug/action, one schema per type so an error
// names the field that is wrong instead of the whole union.
import { Type, type Static, type TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { ItemId, Page as PageSchema, StoryItem as StoryItemSchema, type Page, type StoryItem } from './page.js'

const NewItem = Type.Intersect([StoryItemSchema, Type.Object({ id: ItemId })])
const Date_ = Type.Optional(Type.Number({ minimum: 0 }))
// `fork` on any action names the site the page came from; the kernel journals it first.
// `forkPage` carries the page being forked, so the server need not fetch it.
const Fork = Type.Optional(Type.String({ minLength: 1, maxLength: 300 }))
const ForkPage = Type.Optional(PageSchema)

export const CreateAction = Type.Object({
  type: Type.Literal('create'),
  id: Type.Optional(ItemId),
  item: Type.Intersect([Type.Object({ title: Type.String({ minLength: 1, maxLength: 1000 }) }),
    Type.Object({ story: Type.Optional(Type.Array(StoryItemSchema)) })]),
  date: Date_, fork: Fork, forkPage: ForkPage,
}, { additionalProperties: true })

export const AddAction = Type.Object(
  {
    type: Type.Literal('add'),
    id: ItemId,
    item: NewItem,
    after: Type.Optional(ItemId),
    date: Date_,
    fork: Fork,
    forkPage: ForkPage,
  },
  { additionalProperties: true },
)

export const EditAction = Type.Object({
  type: Type.Literal('edit'), id: ItemId, item: NewItem, date: Date_, fork: Fork, forkPage: ForkPage,
}, { additionalProperties: true })

export const RemoveAction = Type.Object({
  type: Type.Literal('remove'), id: ItemId, date: Date_, fork: Fork, forkPage: ForkPage,
}, { additionalProperties: true })

export const MoveAction = Type.Object(
  {
    type: Type.Literal('move'),
    id: ItemId,
    order: Type.Array(ItemId, { maxItems: 10000 }),
    date: Date_,
    fork: Fork,
    forkPage: ForkPage,
  },
  { additionalProperties: true },
)

// A fork either records where an existing page came from, or carries the whole page copied
// from another site (`item`), which the reference client sends when forking a remote page.
export const ForkAction = Type.Object({
  type: Type.Literal('fork'), site: Type.Optional(Type.String({ maxLength: 300 })),
  date: Date_, fork: Fork, forkPage: ForkPage,
}, { additionalProperties: true })

type WithPages<T> = Omit<T, 'forkPage' | 'item'> & { forkPage?: Page; [key: string]: unknown }
export type CreateAction = WithPages<Static<typeof CreateAction>> & {
  item: { title: string; story?: StoryItem[]; [key: string]: unknown }
}
export type AddAction = WithPages<Static<typeof AddAction>> & { item: StoryItem }
export type EditAction = WithPages<Static<typeof EditAction>> & { item: StoryItem }
export type RemoveAction = WithPages<Static<typeof RemoveAction>>
export type MoveAction = WithPages<Static<typeof MoveAction>>
export type ForkAction = WithPages<Static<typeof ForkAction>>
export type Action = CreateAction | AddAction | EditAction | RemoveAction | MoveAction | ForkAction
export type ActionType = Action['type']

const schemas: Record<ActionType, TSchema> = {
  create: CreateAction, add: AddAction, edit: EditAction, remove: RemoveAction, move: MoveAction, fork: ForkAction,
}
export const ACTION_TYPES = Object.keys(schemas) as ActionType[]
export const actionValidators = Object.fromEntries(
  ACTION_TYPES.map((t) => [t, Compile(schemas[t])]),
) as Record<ActionType, ReturnType<typeof Compile>>
