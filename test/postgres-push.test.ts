// test/push.test.ts, every assertion unchanged, with each farm's pages in PostgreSQL
// (test/fixtures/test-farm.ts starts one server and a database per farm): the store changes
// nothing a client, a plugin or a site sees.
import 'tap'

process.env.WIKIFARM_TEST_STORE = 'postgres'
await import('./push.test.js')
