// Txtzyme's own tests (test/txtzyme-plugin.test.ts), every assertion unchanged, with the plugin in
// a child process under the permission model (with --allow-addons for serialport).
// docs/txtzyme.md says which modes work and why.
import 'tap'

process.env.WIKIFARM_TEST_ISOLATION = 'txtzyme=process'
await import('./txtzyme-plugin.test.js')
