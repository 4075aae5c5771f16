// The one formatter of validation messages (schemas/validation.ts): each problem names the field
// as a JSON pointer and the shape it must have, whatever refused the value.
import t from 'tap'
import { Type } from 'typebox'
import { Compile } from 'typebox/compile'
import { validationMessage } from '../schemas/validation.js'
import { validateAction } from '../core/pages/page-actions.js'

const Hello = Type.Object({
  type: Type.Literal('hello'),
  count: Type.Integer({ minimum: 1 }),
  mode: Type.Optional(Type.Union([Type.Literal('a'), Type.Literal('b')])),
  label: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  nested: Type.Optional(Type.Union([Type.Object({ name: Type.String() }), Type.Null()])),
}, { additionalProperties: false })
const hello = Compile(Hello)
const say = (value: unknown, max?: number) => validationMessage(hello.Errors(value), max)

t.test('a constant names the value it must be', async (t) => {
  t.equal(say({ type: 'goodbye', count: 1 }), '/type: must be "hello"')
})

t.test('a bound, a missing field and an unknown one each get a line', async (t) => {
  t.equal(say({ type: 'hello', count: 0 }), '/count: must be >= 1')
  t.equal(say({ type: 'hello' }), '/count: is required')
  t.equal(say({ type: 'hello', count: 1, colour: 'red' }), '/colour: is not allowed')
})

t.test('a union of constants or types is said once, as the choice', async (t) => {
  t.equal(say({ type: 'hello', count: 1, mode: 'c' }), '/mode: must be "a" or "b"')
  t.equal(say({ type: 'hello', count: 1, label: 3 }), '/label: must be string or null')
})

t.test('a union whose alternative failed inside keeps the inner field', async (t) => {
  t.match(say({ type: 'hello', count: 1, nested: { name: 3 } }), /^\/nested\/name: must be string/)
})

t.test('the whole value is named "/", and the lines stop at the limit', async (t) => {
  t.equal(validationMessage(Compile(Type.Number()).Errors('x')), '/: must be number')
  t.equal(say({ colour: 1 }, 2).split('; ').length, 2)
})

t.test('a journal action refused by its schema reads the same way', async (t) => {
  t.throws(() => validateAction({ type: 'create', item: { title: 3 } }), {
    code: 'WIKIFARM_ERR_BAD_ACTION',
    message: /create: \/item\/title: must be string/,
  })
})
