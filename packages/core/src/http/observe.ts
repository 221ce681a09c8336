/**
 * Calls an application's observer (`onError`, `onEvent`) so that it can only observe: a throw is
 * swallowed, and so is a returned promise that rejects, which would otherwise be an unhandled
 * rejection that ends a Node process. The observer's bug must never change an answer.
 *
 * @example
 * callObserver(options.onError, error, request)
 */
export function callObserver<Args extends unknown[]>(
  observer: ((...args: Args) => unknown) | undefined,
  ...args: Args
): void {
  if (observer === undefined) return
  try {
    const result: unknown = observer(...args)
    if (typeof (result as PromiseLike<unknown> | null)?.then === 'function') {
      Promise.resolve(result).catch(() => {})
    }
  } catch {
    // Ignored: see above.
  }
}
