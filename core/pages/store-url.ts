// The PostgreSQL store's URL: checked once (core/boot/cli.ts), and shown only with its
// password replaced, since the URL is a secret that logs, errors and --help never repeat.

/** The URL with its password (and any password= parameter) replaced by ***. */
export function redactStoreUrl(text: string): string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return 'postgres://***'
  }
  if (url.password !== '') url.password = '***'
  for (const key of [...url.searchParams.keys()]) {
    if (/pass/i.test(key)) url.searchParams.set(key, '***')
  }
  return url.toString()
}

/**
 * Why `text` is not a PostgreSQL URL the store can use, or null when it is. The reason never
 * quotes the URL, so a secret in a mistyped one stays out of the error.
 */
export function storeUrlProblem(text: string): string | null {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return 'must be a URL like postgres://user:password@host:5432/database'
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    return `must start with postgres:// (got ${url.protocol}//…)`
  }
  // A socket folder may stand in for the host: postgres://user@localhost/db?host=/run/postgresql
  if (url.hostname === '' && !url.searchParams.has('host')) return 'names no host (postgres://user@HOST:5432/database)'
  if (url.pathname.replace(/^\//, '') === '') return 'names no database (postgres://user@host:5432/DATABASE)'
  return null
}
