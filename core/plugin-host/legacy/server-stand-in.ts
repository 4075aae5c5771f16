// `params.server` for a legacy plugin: what the 2016 websocket plugins (txtzyme 0.1.4, linkmap
// 0.2.2) hand to `new WebSocketServer({server})`. ws attaches `listening`, `error` and `upgrade`
// listeners and may call `address()`; it never listens itself. The kernel emits `upgrade` here
// only for the plugin's own paths (/plugin/<name>…), only after the site, the session, the Origin
// and the rate and connection caps have passed, so the plugin's ws completes the handshake on a
// request the farm has already accepted. Each instance of a plugin has its own stand-in: ws
// answers 400 to an upgrade whose path is not its own, so instances must never share one.
import { EventEmitter } from 'node:events'
import type { AddressInfo } from 'node:net'

export class LegacyServerStandIn extends EventEmitter {
  readonly #address: () => AddressInfo | string | null

  constructor(address: () => AddressInfo | string | null) {
    super()
    this.#address = address
  }

  /** The farm's listening address, as an http.Server answers it. */
  address(): AddressInfo | string | null {
    return this.#address()
  }

  get listening(): boolean {
    return this.#address() !== null
  }

  /** Whether the plugin attached anything that takes upgrades. */
  get takesUpgrades(): boolean {
    return this.listenerCount('upgrade') > 0
  }

  /** The farm's server is not the plugin's to close: only the plugin's listeners go. */
  close(done?: (err?: Error) => void): this {
    this.removeAllListeners('upgrade')
    if (done) queueMicrotask(() => done())
    return this
  }
}
