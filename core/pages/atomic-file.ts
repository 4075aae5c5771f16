// Durable replacement of a file: temp file, fsync, rename, fsync of the folder. A kill -9 at
// any moment leaves either the old or the new content under the final name, never a mix.
import { open, rename, mkdir, unlink } from 'node:fs/promises'
import { dirname, basename, join } from 'node:path'

let sequence = 0

export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path)
  // The leading dot keeps temp files out of every slug listing (slugs never start with a dot).
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${++sequence}.tmp`)
  await mkdir(dir, { recursive: true })
  const file = await open(tmp, 'w', 0o644)
  try {
    await file.writeFile(data)
    await file.sync()
  } catch (err) {
    await file.close()
    await unlink(tmp).catch(() => {})
    throw err
  }
  await file.close()
  try {
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  await syncDir(dir)
}

export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
