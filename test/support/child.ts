/**
 * Stopping a child process that serves until its stdin closes (the Bun test servers, the bench's
 * emulator and servers under test).
 */
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'

/**
 * Closes the child's stdin (its signal to shut down cleanly) and waits for it to exit. Bounded: a
 * child that has not exited after `killAfterMs` is killed, so a suite or a bench always ends.
 *
 * @example
 * await stopViaStdin(child)
 */
export async function stopViaStdin(child: ChildProcess, killAfterMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.stdin!.end()
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs)
  await exited
  clearTimeout(timer)
}
