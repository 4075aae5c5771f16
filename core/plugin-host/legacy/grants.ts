// The operator's grants for legacy plugins (config `plugins.<name>` where <name> is an
// installed wiki-plugin-* server part): `enabled` and `sites` mean the same as for wikifarm's own
// plugins, `mode` chooses one instance for the farm or one per site (modes.ts); the rest (trust,
// isolation, options, package) do not apply to code that was written for the reference's
// per-site launch, and naming them is an error rather than a silent no-op.
import { ERR_PLUGIN_CONFIG } from '../../errors.js'
import type { PluginGrant } from '../../farm-config.js'
import type { LegacyGrant } from './host.js'
import { isLegacyMode } from './modes.js'

const LEGACY_KEYS = new Set(['enabled', 'sites', 'mode'])

export function legacyGrants(
  grants: Record<string, PluginGrant>, legacyNames: ReadonlySet<string>,
): Record<string, LegacyGrant> {
  const out: Record<string, LegacyGrant> = {}
  for (const [name, grant] of Object.entries(grants)) {
    if (!legacyNames.has(name) || grant.package !== undefined) continue
    for (const key of Object.keys(grant)) {
      if (!LEGACY_KEYS.has(key)) {
        throw new ERR_PLUGIN_CONFIG(
          `plugins.${name}.${key}: wiki-plugin-${name} is a legacy plugin; it takes only "enabled", "sites" and "mode"`)
      }
    }
    if (grant.mode !== undefined && !isLegacyMode(grant.mode)) {
      throw new ERR_PLUGIN_CONFIG(`plugins.${name}.mode must be "shared" or "per-site"`)
    }
    const sites = grant.sites
    out[name] = {
      ...(grant.enabled !== undefined ? { enabled: grant.enabled } : {}),
      ...(sites !== undefined ? { sites } : {}),
      ...(grant.mode !== undefined ? { mode: grant.mode } : {}),
    }
  }
  return out
}
