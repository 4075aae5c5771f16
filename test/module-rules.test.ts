// The module rules docs/architecture.md ("Rules the code keeps") lists, checked on the import
// graph of the TypeScript sources (core/, plugins/, schemas/), read with TypeScript's own parser:
// no import cycle; plugins import only the SDK and schemas/; core/ never imports plugins/;
// schemas/ import nothing of core/; the SDK is a leaf; the page store knows nothing of HTTP.
import t from 'tap'
import { readdirSync, readFileSync, existsSync } from 'node:fs'
import { dirname, join, relative, sep } from 'node:path'
import ts from 'typescript'
import { PACKAGE_ROOT } from '../core/package-info.js'
import { StoreError } from '../core/pages/store-error.js'
import { FilePageStore } from '../core/pages/page-store.js'

interface Import {
  /** A project file (`core/pages/sitemap.ts`), or a package or builtin as written (`fastify`). */
  target: string
  local: boolean
  typeOnly: boolean
}

/** The SDK is reached by its package name from plugins in their own packages. */
const SELF_REFERENCES: Record<string, string> = {
  'wikifarm/plugin': 'core/plugin-api.ts',
  wikifarm: 'core/kernel.ts',
}

function sourceFiles(folder: string): string[] {
  const out: string[] = []
  for (const entry of readdirSync(join(PACKAGE_ROOT, folder), { withFileTypes: true })) {
    const path = join(folder, entry.name)
    if (entry.isDirectory() && entry.name !== 'node_modules') out.push(...sourceFiles(path))
    else if (entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(path)
  }
  return out.map((p) => p.split(sep).join('/'))
}

function importsOf(file: string): Import[] {
  const text = readFileSync(join(PACKAGE_ROOT, file), 'utf8')
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS)
  const found: Import[] = []
  const add = (specifier: string, typeOnly: boolean) => {
    if (SELF_REFERENCES[specifier]) {
      found.push({ target: SELF_REFERENCES[specifier], local: true, typeOnly })
    } else if (specifier.startsWith('.')) {
      const path = relative(PACKAGE_ROOT, join(PACKAGE_ROOT, dirname(file), specifier)).split(sep).join('/')
      const ts = path.replace(/\.js$/, '.ts')
      found.push({ target: existsSync(join(PACKAGE_ROOT, ts)) ? ts : path, local: true, typeOnly })
    } else {
      found.push({ target: specifier, local: false, typeOnly })
    }
  }
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause
      const bindings = clause?.namedBindings
      const allNamedAreTypes =
        bindings !== undefined && ts.isNamedImports(bindings) && bindings.elements.length > 0 &&
        clause?.name === undefined && bindings.elements.every((e) => e.isTypeOnly)
      add(node.moduleSpecifier.text, clause?.isTypeOnly === true || allNamedAreTypes)
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      add(node.moduleSpecifier.text, node.isTypeOnly)
    } else if (
      ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] && ts.isStringLiteralLike(node.arguments[0])
    ) {
      add(node.arguments[0].text, false)
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) &&
      ts.isStringLiteral(node.argument.literal)) {
      add(node.argument.literal.text, true)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

const files = ['core', 'plugins', 'schemas'].flatMap(sourceFiles)
const graph = new Map(files.map((f) => [f, importsOf(f)]))
const under = (folder: string) => (file: string) => file.startsWith(`${folder}/`)

/** Every import cycle's path, found by a depth-first walk (each cycle reported once per entry). */
function cycles(): string[][] {
  const found: string[][] = []
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const walk = (file: string): void => {
    state.set(file, 'open')
    stack.push(file)
    for (const { target, local } of graph.get(file) ?? []) {
      if (!local || !graph.has(target)) continue
      if (state.get(target) === 'open') found.push([...stack.slice(stack.indexOf(target)), target])
      else if (!state.has(target)) walk(target)
    }
    stack.pop()
    state.set(file, 'done')
  }
  for (const file of graph.keys()) if (!state.has(file)) walk(file)
  return found
}

/** The imports of files matching `from` that break `allowed`, as "file -> target" lines. */
function offences(from: (file: string) => boolean, allowed: (i: Import, file: string) => boolean): string[] {
  const out: string[] = []
  for (const [file, imports] of graph) {
    if (!from(file)) continue
    for (const i of imports) if (!allowed(i, file)) out.push(`${file} -> ${i.target}${i.typeOnly ? ' (type)' : ''}`)
  }
  return out
}

t.test('the graph is read: every folder has sources and imports resolve to files', async (t) => {
  for (const folder of ['core', 'plugins', 'schemas']) t.ok(files.some(under(folder)), `${folder}/ has sources`)
  t.ok(graph.get('core/kernel.ts')?.some((i) => i.target === 'core/pages/sites.ts'), 'a known edge is seen')
  const unresolved = offences(() => true, (i) => !i.local || graph.has(i.target) || i.target.endsWith('.json'))
  t.same(unresolved, [], 'every relative import names a source file')
})

t.test('no import cycle', async (t) => {
  t.same(cycles().map((c) => c.join(' -> ')), [])
})

t.test('plugins import only the SDK, schemas/ and their own folder', async (t) => {
  const own = (file: string) => file.split('/').slice(0, 2).join('/') + '/'
  t.same(
    offences(under('plugins'), (i, file) =>
      !i.local || i.target === 'core/plugin-api.ts' || under('schemas')(i.target) || i.target.startsWith(own(file))),
    [],
  )
})

t.test('core/ never imports plugins/', async (t) => {
  t.same(offences(under('core'), (i) => !i.local || !under('plugins')(i.target)), [])
})

t.test('schemas/ import nothing of core/ or plugins/', async (t) => {
  t.same(offences(under('schemas'), (i) => !i.local || under('schemas')(i.target)), [])
})

t.test('the SDK (core/plugin-api.ts) imports only schemas/ and TypeBox types', async (t) => {
  t.same(
    offences((f) => f === 'core/plugin-api.ts', (i) =>
      i.local ? under('schemas')(i.target) : i.target === 'typebox' && i.typeOnly),
    [],
  )
})

t.test('the page store and what it imports know nothing of HTTP', async (t) => {
  const closure = new Set<string>()
  const reach = (file: string): void => {
    if (closure.has(file)) return
    closure.add(file)
    for (const i of graph.get(file) ?? []) if (i.local) reach(i.target)
  }
  reach('core/pages/page-store.ts')
  t.ok(closure.size > 1, `the store's modules: ${[...closure].join(', ')}`)
  const http = /^(fastify|@fastify\/|find-my-way|light-my-request|ws$|node:https?$|node:http2$)/
  t.same(
    offences((f) => closure.has(f), (i) =>
      i.local ? !/^core\/(http|routes|sockets|client)\/|^core\/(kernel|errors)\.ts$/.test(i.target) : !http.test(i.target)),
    [],
  )
})

t.test("the page store's errors carry a code and no HTTP status", async (t) => {
  const root = t.testdir({ pages: { broken: '{"title": "no story"' } })
  const err = await new FilePageStore().site(root).getPage('broken').then(() => null, (e: unknown) => e)
  t.ok(err instanceof StoreError, 'a StoreError')
  t.equal((err as StoreError).code, 'WIKIFARM_ERR_STORE')
  t.notOk('statusCode' in (err as object), 'no status code')
  t.notOk('status' in (err as object), 'no status')
})

t.test('each rule is written once', async (t) => {
  // A rule's tell-tale text, and the one file allowed to hold it.
  const rules: [string, RegExp, string][] = [
    ['the slug pattern', /\[a-z0-9-\]\{1,100\}/, 'schemas/page.ts'],
    ['the item-id pattern', /\[0-9a-f\]\{16\}/, 'schemas/page.ts'],
    ['the [[link]] pattern', /\\\[\\\[/, 'schemas/page-text.ts'],
    ['the slug rule for a link name', /\[\^A-Za-z0-9-\]/, 'schemas/page-text.ts'],
    ['a validation-message formatter', /instancePath/, 'schemas/validation.ts'],
    ['the sendable close codes', /code >= 3000/, 'core/sockets/close-codes.ts'],
    ['a deadline (Promise.race against a timer)', /Promise\.race\(/, 'core/deadline.ts'],
  ]
  for (const [what, tell, home] of rules) {
    const holders = files.filter((f) => tell.test(readFileSync(join(PACKAGE_ROOT, f), 'utf8')))
    // Txtzyme races a device sync against the port's failure, not a timer, and may not import core/.
    const others = holders.filter((f) => f !== home && f !== 'plugins/txtzyme/device.ts')
    t.same(others, [], `${what}: only in ${home}`)
    t.ok(holders.includes(home), `${what}: ${home} holds it`)
  }
})
