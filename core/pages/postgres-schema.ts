// The PostgreSQL store's schema, as numbered migrations: each runs once per database, in order,
// inside the transaction that records it in wikifarm_migrations. Never edit one that has
// shipped; add the next.

export interface Migration {
  readonly version: number
  readonly name: string
  readonly sql: string
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'sites, pages, recycler, status files and sitemap',
    // Pages keep `body`, the JSON exactly as served and exported (key order included, which
    // jsonb does not keep), and `page`, the same as jsonb for queries. Sitemap entries are
    // `json` for the same reason. Every row is keyed by the site's name.
    sql: `
      CREATE TABLE wikifarm_sites (
        site text PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE wikifarm_pages (
        site text NOT NULL REFERENCES wikifarm_sites ON DELETE CASCADE,
        slug text NOT NULL,
        body text NOT NULL,
        page jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (site, slug)
      );
      CREATE TABLE wikifarm_sitemap (
        site text NOT NULL,
        slug text NOT NULL,
        entry json NOT NULL,
        PRIMARY KEY (site, slug),
        FOREIGN KEY (site, slug) REFERENCES wikifarm_pages ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED
      );
      CREATE TABLE wikifarm_recycle (
        site text NOT NULL REFERENCES wikifarm_sites ON DELETE CASCADE,
        slug text NOT NULL,
        body text NOT NULL,
        page jsonb NOT NULL,
        recycled_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (site, slug)
      );
      CREATE TABLE wikifarm_status (
        site text NOT NULL REFERENCES wikifarm_sites ON DELETE CASCADE,
        name text NOT NULL,
        data bytea NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (site, name)
      );
    `,
  },
  {
    version: 2,
    name: 'plugin placement: owners of one-node plugins and each node\'s last attempt',
    // The owner row names the session that holds the plugin's advisory lock (backend_pid): a
    // row is believed only while pg_locks shows that session holding the lock, so a dead
    // owner's row is never trusted and needs no cleanup (core/cluster/placement.ts).
    sql: `
      CREATE TABLE wikifarm_plugin_owners (
        plugin text PRIMARY KEY,
        node_id text NOT NULL,
        node_url text NOT NULL,
        backend_pid integer NOT NULL,
        since timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE wikifarm_plugin_attempts (
        plugin text NOT NULL,
        node_id text NOT NULL,
        node_url text NOT NULL,
        reason text,
        at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (plugin, node_id)
      );
    `,
  },
]
