// A plugin that holds 1 GB of Buffers (outside the V8 heap) when asked, for bench/isolation-memory.ts.
// Plain JavaScript with no import, so the same file loads in any wikifarm checkout, old or new.
const DEFINED = Symbol.for('wikifarm.plugin')
const hoard = []
export default Object.freeze({
  name: 'hoard', apiVersion: 1, trust: 'site',
  async launch() {
    return {
      routes: [{
        method: 'POST', url: '/hoard',
        handler: async () => {
          for (let i = 0; i < 1024; i++) {
            hoard.push(Buffer.alloc(1024 * 1024, i & 0xff))
            if (i % 16 === 15) await new Promise((resolve) => setImmediate(resolve))
          }
          return { held: hoard.length }
        },
      }],
    }
  },
  [DEFINED]: true,
})
