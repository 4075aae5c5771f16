// Folders the reference's per-site start makes in each site, which a plugin launched once for
// the farm cannot make: its start sees farm-level argv. The image plugin makes
// <site>/assets/plugins/image at start and links uploads into it without checking. Made on a
// site's first state-changing request to the plugin (reading a site creates nothing on disk).
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'

const SITE_FOLDERS: Readonly<Record<string, readonly string[]>> = {
  image: ['assets/plugins/image'],
}

export class SiteFolders {
  readonly #done = new Set<string>()

  async prepare(plugin: string, siteName: string, siteRoot: string): Promise<void> {
    const folders = SITE_FOLDERS[plugin]
    const key = `${plugin}\0${siteName}`
    if (!folders || this.#done.has(key)) return
    for (const folder of folders) await mkdir(join(siteRoot, folder), { recursive: true })
    this.#done.add(key)
  }
}
