// What an isolated plugin's sandbox sends as its definition is data the plugin chose: the kernel
// checks each field before the registry's rules apply, and fills in its options' defaults from
// plain JSON Schema as TypeBox does for an in-process plugin.
import t from 'tap'
import { Type } from 'typebox'
import { describedPlugin, sameDescription } from '../core/plugin-host/description.js'
import { optionsWithDefaults } from '../core/plugin-host/plugin-options.js'

const good = { name: 'fine', apiVersion: 1, trust: 'site' }

t.test('a well-formed definition is taken as sent', async (t) => {
  const schema = Type.Object({ port: Type.Integer({ default: 80 }) })
  const options = JSON.parse(JSON.stringify(schema)) as Record<string, unknown>
  t.same(describedPlugin({ ...good, options, isolationModes: ['none', 'process'] }),
    { ...good, options, isolationModes: ['none', 'process'] })
  t.same(describedPlugin({ ...good, retryIntervalMs: 500 }), good, 'what the API no longer has is not taken')
  t.ok(sameDescription(describedPlugin(good), describedPlugin({ ...good })))
  t.notOk(sameDescription(describedPlugin(good), describedPlugin({ ...good, trust: 'farm' })),
    'a changed trust is a changed definition')
})

t.test('malformed definitions are refused with a reason', async (t) => {
  const cases: [unknown, RegExp][] = [
    [null, /its definition is not an object/],
    [[good], /its definition is not an object/],
    [{ ...good, name: 7 }, /its definition has no name/],
    [{ ...good, name: 'x'.repeat(101) }, /its definition has no name/],
    [{ ...good, apiVersion: '1' }, /its definition has no apiVersion/],
    [{ ...good, options: 'a string' }, /its options schema is not a JSON Schema object/],
    [{ ...good, options: { type: 'object', description: 'x'.repeat(70_000) } },
      /its options schema is larger than 65536 characters/],
    [{ ...good, isolationModes: ['vm'] }, /its isolationModes must list some of none, worker, process/],
    [{ ...good, isolationModes: 'process' }, /its isolationModes must list some of none, worker, process/],
  ]
  for (const [data, reason] of cases) {
    t.throws(() => describedPlugin(data), { message: reason }, JSON.stringify(data)?.slice(0, 60))
  }
})

t.test('defaults from a schema that crossed as JSON equal those TypeBox gives in-process', async (t) => {
  const schema = Type.Object({
    device: Type.Optional(Type.String()),
    timeoutMs: Type.Integer({ default: 10_000 }),
    nested: Type.Object({ depth: Type.Integer({ default: 2 }), label: Type.String({ default: 'x' }) }, { default: {} }),
  }, { additionalProperties: false })
  const plain = JSON.parse(JSON.stringify(schema)) as typeof schema
  for (const given of [{}, { timeoutMs: 5 }, { nested: { depth: 9 } }, { device: '/dev/x' }]) {
    t.same(optionsWithDefaults(plain, given), optionsWithDefaults(schema, given), JSON.stringify(given))
  }
  t.same(optionsWithDefaults(plain, {}), { timeoutMs: 10_000, nested: { depth: 2, label: 'x' } })
  const given = { nested: { depth: 9 } }
  optionsWithDefaults(plain, given)
  t.same(given, { nested: { depth: 9 } }, 'the operator\'s object is not changed')
})
