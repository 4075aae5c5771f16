// The process object an isolated plugin sees. Installed by the sandbox before the plugin's module
// is imported, so no plugin code ever holds the originals. In a worker thread `process` is the
// farm's own process: a signal (`process.kill(process.pid, 'SIGKILL')`), an inspector opened on
// the farm (`process._debugProcess`), native code (`process.dlopen`) or a renice reaches the
// farm itself. In a child process these are defence in depth behind the separate user id (when
// the farm runs as root) and Node's permission model. What cannot be neutralised here (file
// access and child processes of a worker, the farm's /proc/self) is listed in docs/security.md.
import { createRequire, syncBuiltinESMExports } from 'node:module'

export type GuardMode = 'worker' | 'process'

/** Why the guard refuses: the plugin sees this code and message, as from any refused call. */
function refusal(what: string): Error {
  const err = new Error(`${what} is not available to an isolated plugin`) as Error & { code: string }
  err.code = 'ERR_ACCESS_DENIED'
  return err
}

/** A stand-in that throws the refusal, whether called or constructed (`new Worker`). */
function refuse(what: string): () => never {
  return function refused(): never { throw refusal(what) }
}

/** Replaces `key` of `target` for good: not writable, not configurable, so it cannot be put back. */
function seal(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: false, configurable: false, enumerable: false })
}

/**
 * Neutralises what lets plugin code signal, debug or load native code into a process it does not
 * own. `allowAddons` (a `process` plugin's grant, for hardware) keeps `process.dlopen`.
 */
export function installGuard(mode: GuardMode, allowAddons: boolean): void {
  // process.kill() calls process._kill(): replacing both leaves no path to the raw signal call.
  seal(process, 'kill', refuse('process.kill'))
  seal(process, '_kill', refuse('process._kill'))
  // SIGUSR1 to a pid opens an inspector there: a debugger on the farm.
  seal(process, '_debugProcess', refuse('process._debugProcess'))
  seal(process, '_debugEnd', refuse('process._debugEnd'))
  seal(process, 'binding', refuse('process.binding'))
  seal(process, '_linkedBinding', refuse('process._linkedBinding'))
  if (mode === 'worker' || !allowAddons) {
    // A native addon runs outside every guard; in a worker it can abort the farm (serialport does).
    const why = mode === 'worker'
      ? 'a native addon cannot load in a worker thread: grant isolation "process" and allowAddons'
      : 'a native addon cannot load without the allowAddons grant'
    seal(process, 'dlopen', () => { throw Object.assign(new Error(why), { code: 'ERR_ACCESS_DENIED' }) })
  }
  const require = createRequire(import.meta.url)
  // os.setPriority() without a pid renices the calling process: in a worker, the farm.
  seal(require('node:os') as object, 'setPriority', refuse('os.setPriority'))
  if (mode === 'worker') {
    // In a worker these end the whole farm, or start code outside this guard: a nested worker
    // gets a fresh `process`, a child process the farm's user and environment.
    seal(process, 'abort', refuse('process.abort'))
    seal(require('node:worker_threads') as object, 'Worker', refuse('new Worker'))
    // An inspector session on its own isolate would reach Node's internals (and the raw
    // bindings behind the sealed functions) through paused frames. The permission model
    // refuses it in a child; a worker has no permission model.
    // inspector/promises builds on inspector's Session when it loads: sealed first.
    for (const name of ['node:inspector/promises', 'node:inspector']) {
      const inspector = require(name) as object
      seal(inspector, 'Session', refuse('inspector.Session'))
      seal(inspector, 'open', refuse('inspector.open'))
    }
    const children = require('node:child_process') as Record<string, unknown>
    for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']) {
      seal(children, name, refuse(`child_process.${name}`))
    }
  }
  // `import { kill } from 'node:os'`-style named imports read the patched objects from now on.
  syncBuiltinESMExports()
}
