// Everything the bench makes (scratch folders, child processes) is registered here and removed
// on every way out: normal end, a thrown error, Ctrl-C or SIGTERM. Children are ended by their
// own pid only.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnSync, type ChildProcess } from 'node:child_process'
import { descendants } from './process-tree.js'

const folders = new Set<string>()
/** Folders kept across parts (the reference farm's install), removed at exit. */
const runFolders = new Set<string>()
const children = new Set<ChildProcess>()

/**
 * A new scratch folder under the system's temp folder, removed when the part ends (or, with
 * `untilExit`, when the run ends).
 */
export function scratchDir(label: string, untilExit = false): string {
  const dir = mkdtempSync(join(tmpdir(), `wikifarm-bench-${label}-`))
  ;(untilExit ? runFolders : folders).add(dir)
  return dir
}

/**
 * Removes a folder tree. `rm -rf` is several times faster than fs.rmSync on the tens of
 * thousands of site folders the scale part makes; rmSync is the fallback.
 */
function removeTree(dir: string): void {
  const rm = spawnSync('rm', ['-rf', '--', dir], { stdio: 'ignore' })
  if (rm.status !== 0) rmSync(dir, { recursive: true, force: true })
}

export function removeDir(dir: string): void {
  removeTree(dir)
  folders.delete(dir)
  runFolders.delete(dir)
}

export function trackChild(child: ChildProcess): void {
  children.add(child)
  child.once('exit', () => children.delete(child))
}

/**
 * Ends every child still running and removes the part's folders (all folders with `all`).
 * Synchronous, so it also works from process.on('exit').
 */
export function cleanupNow(all = false): void {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue
    for (const pid of child.pid ? descendants(child.pid) : []) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    child.kill('SIGKILL')
  }
  children.clear()
  for (const dir of all ? [...folders, ...runFolders] : folders) removeTree(dir)
  folders.clear()
  if (all) runFolders.clear()
}

let installed = false
/** Installs the exit and signal handlers once. */
export function cleanupOnExit(): void {
  if (installed) return
  installed = true
  process.on('exit', () => cleanupNow(true))
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      console.error(`\n${signal}: removing the bench's processes and folders`)
      cleanupNow(true)
      process.exit(130)
    })
  }
}
