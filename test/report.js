#!/usr/bin/env node
// Reads tap's TAP stream on stdin and reports as it goes: one line per test file as it
// finishes (with a running count and its time), the whole TAP output of a file that failed,
// and at the end the total time and the plain line "N passed, N failed" that CI reads, where
// N counts assertions flattened across subtests (tap's own summary counts files).
// Usage: tap --reporter=tap | node test/report.js FILES_EXPECTED [EXTRA_FAILURES]
import { createInterface } from 'node:readline'
import { Parser } from 'tap-parser'

const expected = Number(process.argv[2] ?? 0)
let failed = Number(process.argv[3] ?? 0)
const all = []

const started = Date.now()
let files = 0
let block = []
const width = String(expected || 99).length
for await (const line of createInterface({ input: process.stdin })) {
  all.push(line)
  block.push(line)
  // A file's own result is the only unindented test point in tap's stream.
  const done = /^(not )?ok \d+ - (\S+)(?: # time=([\d.]+)ms)?/.exec(line)
  if (!done) continue
  files++
  const seconds = done[3] ? (Number(done[3]) / 1000).toFixed(1).padStart(6) + ' s' : ''
  const name = done[2].replace(/^dist\/test\//, '')
  console.log(
    `[${String(files).padStart(width)}/${expected || '?'}] ${done[1] ? 'FAIL' : 'ok  '} ${name.padEnd(44)}${seconds}`,
  )
  if (done[1]) console.log(block.join('\n'))
  block = []
}
// tap-parser's flattening (as `tap-parser -f -t`): every assertion of every subtest at one level.
const flat = Parser.stringify(Parser.parse(all.join('\n') + '\n'), { flat: true }).split('\n')
const passed = flat.filter((line) => line.startsWith('ok ')).length
failed += flat.filter((line) => line.startsWith('not ok ')).length
const minutes = ((Date.now() - started) / 60000).toFixed(1)
console.log(`${files} test files in ${minutes} min`)
if (expected && files < expected) {
  console.log(`${expected - files} test files did not report`)
  failed++
}
console.log(`${passed} passed, ${failed} failed`)
process.exitCode = failed === 0 ? 0 : 1
