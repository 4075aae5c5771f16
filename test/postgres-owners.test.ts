// test/owners.test.ts, every assertion unchanged, with each farm's pages in PostgreSQL: claims,
// logins, the administrator and owner-only writes read and write owner.json as a row, and leave
// the same state there as in files (the tests of folders seeded by hand stay with the file store).
import 'tap'

process.env.WIKIFARM_TEST_STORE = 'postgres'
await import('./owners.test.js')
