/**
 * Registers background work with the Workers runtime, e.g. `waitUntil` from `cloudflare:workers`
 * or a request's `ctx.waitUntil`.
 *
 * @example
 * import { waitUntil } from 'cloudflare:workers'
 * const extend: WaitUntil = waitUntil
 */
export type WaitUntil = (promise: Promise<unknown>) => void

/** @internal */
export function checkWaitUntil(value: unknown, who: string): WaitUntil | undefined {
  if (value !== undefined && typeof value !== 'function') {
    throw new TypeError(
      `${who}: waitUntil must be a function, e.g. waitUntil from 'cloudflare:workers'`,
    )
  }
  return value as WaitUntil | undefined
}

/**
 * @internal The verifier writes to its store without awaiting (a request must not wait on the
 * shared tier), but workerd cancels a request's unfinished I/O once its response is sent: the
 * write would be lost, or a Cache API body cut short. Handing the write to `waitUntil` keeps
 * it alive. The copy handed over never rejects, so a failure is reported once, by the caller.
 */
export function keepAlive<T>(work: Promise<T>, waitUntil: WaitUntil | undefined): Promise<T> {
  if (waitUntil !== undefined) {
    try {
      waitUntil(work.then(noop, noop))
    } catch {
      // Called outside a request (no context to extend): the write proceeds as it can.
    }
  }
  return work
}

function noop(): void {}
