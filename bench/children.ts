// Child servers for the bench: a free port, a spawn timed until the port accepts connections,
// the child's resident memory, and a bounded stop. Every child is registered for cleanup.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { openSync, closeSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { trackChild } from './cleanup.js'
import { descendants } from './process-tree.js'

export interface Child {
  name: string
  child: ChildProcess
  port: number
  /** Milliseconds from spawn until the port accepted a connection. */
  bootMs: number
  /** performance.now() at spawn: the origin of the child's own clock, near enough. */
  spawnedAt: number
  /** Where the child's stdout and stderr go (a file), or null when discarded. */
  logFile: string | null
}

export { freePort } from '../test/fixtures/ports.js'

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' })
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

export interface SpawnOptions {
  name: string
  args: string[]
  port: number
  env?: Record<string, string>
  cwd?: string
  /** Append the child's output to this file; null discards it. */
  logFile?: string | null
  timeoutMs?: number
}

/** Spawns `node <args>` and resolves once `port` accepts connections. */
export async function spawnServer(opts: SpawnOptions): Promise<Child> {
  const out = opts.logFile ? openSync(opts.logFile, 'a') : 'ignore'
  const started = performance.now()
  const child = spawn(process.execPath, opts.args, {
    cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', out, out],
  })
  if (typeof out === 'number') closeSync(out)
  trackChild(child)
  const deadline = started + (opts.timeoutMs ?? 30_000)
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${opts.name} exited (${child.exitCode ?? child.signalCode}) before ` +
          `listening${opts.logFile ? `; see ${opts.logFile}` : ''}`,
      )
    }
    if (await accepts(opts.port)) break
    if (performance.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`${opts.name} did not listen on ${opts.port} within ${opts.timeoutMs ?? 30_000} ms`)
    }
    await new Promise((r) => setTimeout(r, 5))
  }
  return {
    name: opts.name,
    child,
    port: opts.port,
    bootMs: performance.now() - started,
    spawnedAt: started,
    logFile: opts.logFile ?? null,
  }
}

function ownRss(pid: number): number {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
    return kb ? Number(kb) * 1024 : 0
  } catch {
    return 0
  }
}

/**
 * Resident set size of a process and its descendants, bytes: the reference farm runs its
 * server in a cluster worker under a primary process, and both are its cost.
 */
export function rssBytes(pid: number): number {
  return [pid, ...descendants(pid)].reduce((sum, p) => sum + ownRss(p), 0)
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child is gone. */
export async function stopChild(c: { child: ChildProcess }, graceMs = 5000): Promise<void> {
  const { child } = c
  if (child.exitCode !== null || child.signalCode !== null) return
  // The reference's cluster worker is ended with its primary, by pid, not left behind.
  const below = child.pid ? descendants(child.pid) : []
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
  for (const pid of below) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
}
