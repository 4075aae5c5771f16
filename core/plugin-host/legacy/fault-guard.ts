// An exception thrown in a legacy plugin's callback (the image plugin's gallery reads a folder
// and calls forEach on what came back, undefined when the folder is missing) would reach
// 'uncaughtException', and the farm closes on those (core/boot/process-faults.ts). Legacy code
// runs in the farm's thread, so it runs inside a node:domain: the one mechanism in Node that
// routes an exception from any callback, timer or event a piece of code started to a handler of
// its own. The module is deprecated for new designs; here it fences code that predates them, and
// the handler only answers, logs and counts. The kernel's request handling never runs inside a
// fence; only what a legacy plugin calls into does (its pagehandler's reads and writes, which
// are promise-based, so their failures reach the plugin's callback, not the fence).
import type Domains from 'node:domain'
import type { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'

/**
 * node:domain, loaded on the first fence: loading it alone marks every EventEmitter as domain-aware
 * (EventEmitter.usingDomains), so a farm whose legacy plugins run in the legacy child never loads it.
 */
let loaded: typeof Domains | null = null
export function nodeDomain(): typeof Domains {
  loaded ??= createRequire(import.meta.url)('node:domain') as typeof Domains
  return loaded
}

export type FaultHandler = (err: unknown) => void

/** Runs `fn` with every exception from what it starts going to `onFault`; `emitters` join the fence. */
export function fenced<T>(onFault: FaultHandler, emitters: EventEmitter[], fn: () => T): T {
  const fence = nodeDomain().create()
  fence.on('error', onFault)
  for (const emitter of emitters) fence.add(emitter)
  return fence.run(fn)
}
