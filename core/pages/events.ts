// The typed event bus: the kernel publishes what happened to pages, sites and connections;
// plugins listen. A listener that throws or rejects is logged under its owner's name and
// never reaches the emitter or the other listeners.
import type { FarmEvents } from '../plugin-api.js'

// The events are part of the plugin contract, so the SDK declares them.
export type { FarmEvents }
export type EventName = keyof FarmEvents
export type Listener<E extends EventName> = (event: FarmEvents[E]) => void | Promise<void>

export interface ListenerFailure {
  owner: string
  event: EventName
  error: unknown
}

interface Registration {
  owner: string
  /** When set, only events of sites it accepts reach the listener (site-trust plugins). */
  accepts: ((site: string) => boolean) | null
  fn: (event: never) => void | Promise<void>
}

export class EventBus {
  #listeners = new Map<EventName, Registration[]>()
  readonly #onFailure: (failure: ListenerFailure) => void

  constructor(onFailure: (failure: ListenerFailure) => void) {
    this.#onFailure = onFailure
  }

  /** Returns a function that removes the listener. */
  on<E extends EventName>(
    event: E,
    fn: Listener<E>,
    owner = 'kernel',
    accepts: ((site: string) => boolean) | null = null,
  ): () => void {
    const registration: Registration = { owner, accepts, fn: fn as Registration['fn'] }
    const list = this.#listeners.get(event) ?? []
    this.#listeners.set(event, [...list, registration])
    return () => {
      this.#listeners.set(
        event,
        (this.#listeners.get(event) ?? []).filter((r) => r !== registration),
      )
    }
  }

  emit<E extends EventName>(event: E, payload: FarmEvents[E]): void {
    const list = this.#listeners.get(event)
    if (!list) return
    const site = (payload as { site: string }).site
    for (const registration of list) {
      if (registration.accepts !== null && !registration.accepts(site)) continue
      try {
        const result = (registration.fn as Listener<E>)(payload)
        if (result && typeof result.then === 'function') {
          result.then(undefined, (error: unknown) => this.#onFailure({ owner: registration.owner, event, error }))
        }
      } catch (error) {
        this.#onFailure({ owner: registration.owner, event, error })
      }
    }
  }

  listenerCount(event: EventName): number {
    return this.#listeners.get(event)?.length ?? 0
  }
}
