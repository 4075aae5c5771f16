// A real pseudo-terminal pair made with socat, and the Txtzyme simulator served on one end of it:
// the plugin opens the other end through the real serialport binding, as it would a Teensy.
import { spawn, type ChildProcess } from 'node:child_process'
import { lstat } from 'node:fs/promises'
import { SerialPort } from 'serialport'
import { TxtzymeSimulator } from './simulator.js'

export interface PtyPair {
  /** The end the plugin opens (a symlink to /dev/pts/N). */
  devicePath: string
  /** The end the simulator serves. */
  simulatorPath: string
  socat: ChildProcess
  /** Kills socat (both links go away) and waits for it to exit. */
  close(): Promise<void>
}

/** Is socat on the PATH? */
export async function haveSocat(): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = spawn('socat', ['-V'], { stdio: 'ignore' })
    probe.on('error', () => resolve(false))
    probe.on('exit', (code) => resolve(code === 0))
  })
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path)
    return true
  } catch {
    return false
  }
}

export function waitExit(child: ChildProcess, ms = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); resolve() }, ms)
    child.once('exit', () => { clearTimeout(timer); resolve() })
  })
}

/**
 * Starts `socat -d -d pty,raw,echo=0,link=<devicePath> pty,raw,echo=0,link=<simulatorPath>` and
 * resolves once socat is moving data between them.
 */
export async function openPtyPair(devicePath: string, simulatorPath: string, timeoutMs = 5000): Promise<PtyPair> {
  const socat = spawn(
    'socat',
    ['-d', '-d', `pty,raw,echo=0,link=${devicePath}`, `pty,raw,echo=0,link=${simulatorPath}`],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  )
  let log = ''
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socat did not start within ${timeoutMs} ms: ${log}`)), timeoutMs)
    socat.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString()
      if (log.includes('starting data transfer loop')) { clearTimeout(timer); resolve() }
    })
    socat.once('error', (err) => { clearTimeout(timer); reject(err) })
    socat.once('exit', (code) => { clearTimeout(timer); reject(new Error(`socat exited with ${code}: ${log}`)) })
  })
  try {
    await ready
    while (!(await exists(devicePath)) || !(await exists(simulatorPath))) await new Promise((r) => setTimeout(r, 5))
  } catch (err) {
    socat.kill('SIGKILL')
    throw err
  }
  socat.stderr?.resume()
  return {
    devicePath,
    simulatorPath,
    socat,
    async close() {
      if (socat.exitCode === null && socat.signalCode === null) socat.kill('SIGTERM')
      await waitExit(socat)
    },
  }
}

/**
 * Bytes the simulator may have handed to the tty before it counts the host as not reading. The
 * device's own bound is OUTPUT_BUFFER (128), but a pty write completes asynchronously and the
 * simulator waits for room by polling, so the bound is large enough that the pty never runs
 * dry between two polls on a loaded machine (an 18 MB output must still flow at the pty's speed).
 */
export const UNREAD_OUTPUT = 1024 * 1024
/**
 * And how long the tty may take nothing before output is dropped: the firmware's 25 ms is
 * device time; a host process on a loaded machine can pause longer (a GC, no CPU) and still be
 * reading, and only one that has stopped should lose output here.
 */
export const UNREAD_TIMEOUT_MS = 500

export interface ServedSimulator {
  simulator: TxtzymeSimulator
  port: SerialPort
  close(): Promise<void>
}

/** Opens `path` with serialport and runs a simulator on it: what the host writes, it runs. */
export async function serveSimulator(
  path: string,
  options: { speed?: number; inputBuffer?: number; outputBuffer?: number; dropUnread?: boolean } = {},
): Promise<ServedSimulator> {
  const port = new SerialPort({ path, baudRate: 9600, autoOpen: false })
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())))
  // Output the tty has not taken yet: it grows once the pty pair's buffers are full because
  // the host does not read, and then (with dropUnread) the simulator drops output as the firmware does.
  let unread = 0
  const simulator = new TxtzymeSimulator({
    speed: options.speed ?? 1,
    ...(options.inputBuffer !== undefined ? { inputBuffer: options.inputBuffer } : {}),
    outputBuffer: options.outputBuffer ?? UNREAD_OUTPUT,
    transmitTimeoutMs: UNREAD_TIMEOUT_MS,
    // Opt-in: a test host in the same process on a loaded machine can stall past any bound
    // while still reading (the 18 MB output test did); the tests that model a host that stops
    // reading turn it on.
    ...(options.dropUnread ? { unread: () => unread } : {}),
    output: (text) => {
      if (!port.isOpen) return
      unread += text.length
      port.write(text, () => { unread -= text.length })
    },
  })
  port.on('data', (chunk: Buffer) => simulator.input(chunk))
  port.on('error', () => {})
  return {
    simulator,
    port,
    async close() {
      simulator.stop()
      if (port.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()))
    },
  }
}
