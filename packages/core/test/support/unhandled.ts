/**
 * Runs `body` and returns every promise rejection nobody handled while it ran. Node reports an
 * unhandled rejection only after the microtask queue drains, so it waits one macrotask more.
 *
 * @example
 * expect(await unhandledRejectionsOf(() => guard.authenticate(request))).toEqual([])
 */
export async function unhandledRejectionsOf(body: () => Promise<unknown>): Promise<unknown[]> {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  try {
    await body()
    await new Promise((resolve) => setTimeout(resolve, 10))
  } finally {
    process.off('unhandledRejection', onUnhandled)
  }
  return unhandled
}
