// Linkmap's own tests (test/linkmap.test.ts), every assertion unchanged, with the plugin in
// a worker thread: isolation changes nothing a client or a site sees.
import 'tap'

process.env.WIKIFARM_TEST_ISOLATION = 'linkmap=worker'
await import('./linkmap.test.js')
