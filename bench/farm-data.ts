// The scratch farms the parts measure: site names, their folders on disk, and owners for the
// sites that take edits. The layout is the reference's (`<data>/<host>/pages`,
// `<data>/<host>/status/owner.json`), so both farms read the same folders.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export function siteHosts(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `site${i}.example`)
}

export function makeSiteFolders(data: string, hosts: readonly string[]): void {
  for (const host of hosts) mkdirSync(join(data, host, 'pages'), { recursive: true })
}

/** Site folders claimed by a friends owner whose secret is `secretOf(host)`. */
export function claimedSites(data: string, hosts: readonly string[], secretOf: (host: string) => string): void {
  for (const host of hosts) {
    mkdirSync(join(data, host, 'pages'), { recursive: true })
    mkdirSync(join(data, host, 'status'), { recursive: true })
    writeFileSync(
      join(data, host, 'status', 'owner.json'),
      JSON.stringify({ name: 'bench', friend: { secret: secretOf(host) } }),
    )
  }
}
