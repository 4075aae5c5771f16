// One entry of /system/sitemap.json, the index federated-wiki clients search and link with.
import { Type, type Static } from 'typebox'

export const SitemapEntry = Type.Object({
  slug: Type.String(),
  title: Type.String(),
  date: Type.Optional(Type.Number()),
  synopsis: Type.String(),
  links: Type.Optional(Type.Record(Type.String(), Type.String())),
})
export type SitemapEntry = Static<typeof SitemapEntry>
export const Sitemap = Type.Array(SitemapEntry)
