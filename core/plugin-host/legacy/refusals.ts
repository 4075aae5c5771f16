// Routes of known legacy plugins that the farm answers itself, with a coded refusal, instead of
// handing them to the plugin: what they do cannot be confined to the request's site.
// plugmatic's install runs `npm install` in the farm's own package folder (new code for every
// site, as the user the farm runs as): packages are the operator's to install, with npm.
export interface Refusal {
  method: string
  path: string
  reason: string
}

const REFUSALS: Readonly<Record<string, readonly Refusal[]>> = {
  plugmatic: [{
    method: 'POST', path: '/plugin/plugmatic/install',
    reason: 'installing plugins from the browser; the operator installs them with npm and restarts the farm',
  }],
}

/**
 * The refusal for this request to `plugin`, or null. Compared as Express matches routes: case
 * aside, a trailing slash aside; and %-escapes decoded, so no spelling of the path slips past.
 */
export function refusalFor(plugin: string, method: string, path: string): Refusal | null {
  let plain: string
  try {
    plain = decodeURIComponent(path)
  } catch {
    plain = path
  }
  plain = plain.toLowerCase().replace(/\/+$/, '')
  return REFUSALS[plugin]?.find((r) => r.method === method && r.path === plain) ?? null
}
