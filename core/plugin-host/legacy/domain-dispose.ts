// `domain.dispose()`, which Node removed (DEP0012, end of life since Node 9), is still called by
// plugins of its time: wiki-plugin-txtzyme 0.1.4 calls it in its domain's error handler, when its
// device goes away. Without it that handler throws a TypeError, which no domain catches, and the
// farm's process-fault handler would close the farm. The stand-in does what dispose did, as far
// as a plugin can see: the domain's streams and sockets are destroyed, its timers cleared, and it
// is left. Installed only when legacy plugins run, only if missing.
import domain from 'node:domain'

interface Disposable {
  members: unknown[]
  exit(): void
  dispose?: () => void
}

function release(member: unknown): void {
  if (member === null || typeof member !== 'object') return
  const m = member as { destroy?: unknown; close?: unknown; hasRef?: unknown }
  if (typeof m.hasRef === 'function') clearTimeout(member as NodeJS.Timeout)
  else if (typeof m.destroy === 'function') (m.destroy as () => void).call(member)
}

export function provideDomainDispose(): void {
  const proto = (domain.Domain as unknown as { prototype: Disposable }).prototype
  if (typeof proto.dispose === 'function') return
  proto.dispose = function dispose(this: Disposable): void {
    for (const member of this.members.splice(0)) {
      try {
        release(member)
      } catch {
        // Best effort, as dispose was: one member that cannot be released does not keep the rest.
      }
    }
    this.exit()
  }
}
