// test/page-routes.test.ts, every assertion unchanged, with each farm's pages in PostgreSQL:
// reads, writes, the recycler, flags and sitemaps of single sites and farms, with what is stored
// read from the rows (the test of a page file broken by hand stays with the file store).
import 'tap'

process.env.WIKIFARM_TEST_STORE = 'postgres'
await import('./page-routes.test.js')
