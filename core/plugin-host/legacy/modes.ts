// How many instances of a legacy plugin run. `shared`: one for the farm, started at boot; every
// site's requests reach it, and it reads the site from `argv` on each request. `per-site`: a fresh
// module instance for each site, started on the site's first request with that site's argv, for
// plugins that capture a site's settings at start (linkmap 0.2.2 builds its map from `argv.db`
// once; coauthor and json keep one site's state in module variables). The operator chooses with
// the grant key `mode`; the known cases default to per-site.
export const LEGACY_MODES = ['shared', 'per-site'] as const
export type LegacyMode = (typeof LEGACY_MODES)[number]

const PER_SITE_BY_DEFAULT: ReadonlySet<string> = new Set(['linkmap', 'coauthor', 'json'])

export function defaultMode(name: string): LegacyMode {
  return PER_SITE_BY_DEFAULT.has(name) ? 'per-site' : 'shared'
}

export function isLegacyMode(value: unknown): value is LegacyMode {
  return LEGACY_MODES.some((m) => m === value)
}
