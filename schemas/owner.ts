// status/owner.json as written by wiki-security-friends, so existing farms keep their owners.
import { Type, type Static } from 'typebox'
import { Compile } from 'typebox/compile'

export const Owner = Type.Object({
  name: Type.String({ maxLength: 200 }),
  friend: Type.Object({ secret: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: true }),
}, { additionalProperties: true })
export type Owner = Static<typeof Owner>
export const OwnerValidator = Compile(Owner)
