// test/page-actions.test.ts, every assertion unchanged, with each farm's pages in PostgreSQL:
// stored pages, the recycler and the sitemap are read from the database's rows instead of files
// (test/fixtures/test-farm.ts storeView), and every action leaves the same state there.
import 'tap'

process.env.WIKIFARM_TEST_STORE = 'postgres'
await import('./page-actions.test.js')
