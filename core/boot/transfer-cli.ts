// `wikifarm export --store URL --to DIR` and `wikifarm import --from DIR --store URL`: a farm
// between the folder layout and PostgreSQL (store-transfer.ts does the moving).
// Exit codes: 0 everything moved, 1 something was not (each file named, with why), 2 bad usage.
import { parseArgs } from 'node:util'
import { resolve } from 'node:path'
import { envNames, redactedCommandLine, secretFlagWarning } from './cli.js'
import { PostgresPageStore } from '../pages/postgres-store.js'
import { exportFolder, importFolder, type TransferReport } from './store-transfer.js'
import { storeUrlProblem } from '../pages/store-url.js'

/** What a command reads and writes: main's io (core/boot/main.ts), given without importing main. */
export interface CommandIO {
  env: NodeJS.ProcessEnv
  stdout: NodeJS.WriteStream
  stderr: NodeJS.WriteStream
}

export const TRANSFER_COMMANDS = ['export', 'import'] as const
export type TransferCommand = (typeof TRANSFER_COMMANDS)[number]

const USAGE = `Usage: wikifarm export --store URL --to DIR
       wikifarm import --from DIR --store URL

  export   writes every site of the PostgreSQL store into DIR (new or empty) in the reference's
           folder layout: DIR/<host>/pages, status, recycle (one site named "default": DIR/pages …)
  import   loads a data folder (one site, or a farm's folder of sites) into the store; sites the
           store already has are left alone, and every file not taken is named, with why

  --store URL   postgres://user:password@host:5432/database; better in ${envNames('store').join(' or ')},
                since a command line is visible to other local users
`

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split(/\r?\n/, 1)[0] ?? ''
}

/** Runs one transfer command; sets process.exitCode. */
export async function runTransfer(command: TransferCommand, argv: string[], io: CommandIO): Promise<void> {
  const say = (line: string) => io.stderr.write(`wikifarm ${command}: ${line}\n`)
  let values: { store?: string; to?: string; from?: string; help?: boolean }
  try {
    values = parseArgs({
      args: argv,
      options: {
        store: { type: 'string' }, to: { type: 'string' }, from: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values
  } catch (err) {
    say(oneLine(err))
    process.exitCode = 2
    return
  }
  if (values.help) {
    io.stdout.write(USAGE)
    return
  }
  const title = redactedCommandLine(process.argv)
  if (title !== null) process.title = title
  if (values.store !== undefined) say(secretFlagWarning('store'))
  const url = values.store ??
    envNames('store').map((name) => io.env[name]).find((v) => v !== undefined && v.trim() !== '')
  const folder = command === 'export' ? values.to : values.from
  const problem = url === undefined ? `no store: give --store URL or set ${envNames('store')[0]}` : storeUrlProblem(url)
  if (problem !== null || url === undefined || folder === undefined) {
    say(problem ?? `no folder: give --${command === 'export' ? 'to' : 'from'} DIR`)
    io.stderr.write(USAGE)
    process.exitCode = 2
    return
  }

  let store: PostgresPageStore
  try {
    store = await PostgresPageStore.open(url)
  } catch (err) {
    say(`cannot open the store: ${oneLine(err)}`)
    process.exitCode = 1
    return
  }
  const tty = io.stderr.isTTY === true
  let shown = 0
  const progress = (done: number, total: number, site: string) => {
    // A terminal gets one line rewritten in place; a log gets a line per tenth of each site.
    const line = `${command === 'export' ? 'exporting' : 'importing'} ${site}: ${done}/${total} files`
    if (tty) io.stderr.write(`\r${line}\x1b[K${done === total ? '\n' : ''}`)
    else if (done === total || Math.floor((done * 10) / total) > shown) io.stderr.write(`${line}\n`)
    shown = done === total ? 0 : Math.floor((done * 10) / total)
  }
  let report: TransferReport
  try {
    report = command === 'export'
      ? await exportFolder(store, resolve(folder), progress)
      : await importFolder(store, resolve(folder), progress)
  } catch (err) {
    say(oneLine(err))
    process.exitCode = 1
    return
  } finally {
    await store.close()
  }
  for (const note of report.notes) say(`${note.path}: ${note.reason}`)
  for (const problem of report.problems) say(`NOT TAKEN ${problem.path}: ${problem.reason}`)
  io.stdout.write(`${command === 'export' ? 'exported' : 'imported'} ${report.sites} sites: ${report.pages} pages, ` +
    `${report.recycled} recycled, ${report.statusFiles} status files` +
    `${report.problems.length > 0 ? `; ${report.problems.length} files NOT taken (listed above)` : ''}\n`)
  if (report.problems.length > 0) process.exitCode = 1
}
