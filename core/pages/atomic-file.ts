// Durable replacement of a file: temp file, fsync, rename, fsync of the folder. A kill -9 at
// any moment leaves either the old or the new content under the final name, never a mix,
// and at worst a temp file, which the next opening of the site removes (removeLeftoverTemps).
import { open, rename, link, mkdir, readdir, unlink } from 'node:fs/promises'
import { dirname, basename, join } from 'node:path'

let sequence = 0
/** Temp files this process is writing now: never leftovers, whatever their age. */
const writing = new Set<string>()

// `.<name>.<pid>.<sequence>.tmp`: the leading dot keeps temp files out of every slug listing
// (slugs never start with a dot); the pid says which process wrote it.
const TEMP = /^\.(.+)\.([1-9][0-9]{0,9})\.([1-9][0-9]{0,15})\.tmp$/

/**
 * With `exclusive`, the file is only created, never replaced: the temp file is linked under the
 * final name, which the file system refuses (EEXIST) when the name exists, atomically even
 * between processes; answers false then, and the file is left as it was.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, exclusive = false): Promise<boolean> {
  const dir = dirname(path)
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${++sequence}.tmp`)
  writing.add(tmp)
  try {
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
      if (exclusive) await link(tmp, path).finally(() => unlink(tmp).catch(() => {}))
      else await rename(tmp, path)
    } catch (err) {
      await unlink(tmp).catch(() => {})
      if (exclusive && (err as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw err
    }
  } finally {
    writing.delete(tmp)
  }
  await syncDir(dir)
  return true
}

export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Is a process of that id running (ours included)? EPERM: it runs, as someone else. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Removes from `dir` the temp files writeFileAtomic left behind when its process was killed
 * mid-write: named as it names them, for a file `owns` accepts, and neither being written by
 * this process nor by another one still running (a farm draining while its successor
 * starts). Anything else, temp-looking or not, is left alone. Returns the names removed.
 */
export async function removeLeftoverTemps(dir: string, owns: (name: string) => boolean): Promise<string[]> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  const removed: string[] = []
  for (const name of names) {
    const match = TEMP.exec(name)
    if (!match || !owns(match[1] as string)) continue
    const path = join(dir, name)
    const pid = Number(match[2])
    if (writing.has(path) || (pid !== process.pid && running(pid))) continue
    try {
      await unlink(path)
      removed.push(name)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }
  return removed
}
