// Runs the Txtzyme simulator on a tty, so the plugin (or any serial client) can talk to it.
//
//   node dist/plugins/txtzyme/simulator-cli.js --link /tmp/txtzyme [--speed 1]   (npm run txtzyme-simulator)
//       makes a pty pair with socat: the device end is /tmp/txtzyme, the simulator serves
//       /tmp/txtzyme.sim; start the farm with the plugin option device=/tmp/txtzyme.
//   node dist/plugins/txtzyme/simulator-cli.js --tty /dev/pts/7 [--speed 1]
//       serves an existing tty (one end of a pair someone else made).
import { parseArgs } from 'node:util'
import { openPtyPair, serveSimulator, type PtyPair } from './pty.js'

const { values } = parseArgs({
  options: {
    tty: { type: 'string' },
    link: { type: 'string' },
    speed: { type: 'string', default: '1' },
  },
})

const speed = Number(values.speed)
if (!Number.isFinite(speed) || speed <= 0) {
  console.error('txtzyme-simulator: --speed must be a positive number')
  process.exit(2)
}
if (!values.tty === !values.link) {
  console.error('txtzyme-simulator: give exactly one of --tty <path> or --link <path>')
  process.exit(2)
}

let pair: PtyPair | null = null
let ttyPath = values.tty as string
if (values.link) {
  pair = await openPtyPair(values.link, `${values.link}.sim`)
  ttyPath = pair.simulatorPath
}
const served = await serveSimulator(ttyPath, { speed })
console.log(`txtzyme-simulator: simulated Txtzyme (no hardware) serving ${ttyPath}` +
  (pair ? `; attach the plugin to ${pair.devicePath}` : ''))

let closing = false
async function shutdown(): Promise<void> {
  if (closing) return
  closing = true
  await served.close()
  await pair?.close()
  process.exit(0)
}
// The bench asks for the device's own figures (busy time, bytes lost) with SIGUSR2: one JSON line.
process.on('SIGUSR2', () => {
  const { linesRun, busyMs, inputDropped, outputDropped } = served.simulator
  console.log(JSON.stringify({ linesRun, busyMs, inputDropped, outputDropped }))
})
process.on('SIGTERM', () => { void shutdown() })
process.on('SIGINT', () => { void shutdown() })
served.port.on('close', () => { void shutdown() })
