/**
 * Runs every fault scenario in a process of its own and prints one JSON line per scenario, then
 * `{ "type": "done" }` with what was still open. It never calls process.exit: faults.test.ts
 * asserts that it exits by itself, promptly, which it only does when no socket, server or timer
 * was left behind.
 */

import { FRAMEWORKS } from '../fuzz/apps.js'
import { FAULT_CASES, runFaultScenario, runFlakyScenario } from './scenario.js'

function print(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`)
}

const describeError = (reason: unknown): string =>
  reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason)

// Recorded, reported, and fatal to the exit code (but not to the run, so every scenario still
// reports). One that comes after the done line is printed as a line of its own.
let finished = false
const unhandled: string[] = []
const uncaught: string[] = []
function trouble(list: string[], kind: 'unhandledRejection' | 'uncaughtException') {
  return (reason: unknown) => {
    const text = describeError(reason)
    list.push(text)
    process.exitCode = 1
    if (finished) print({ type: 'late', kind, error: text })
  }
}
process.on('unhandledRejection', trouble(unhandled, 'unhandledRejection'))
process.on('uncaughtException', trouble(uncaught, 'uncaughtException'))

async function play(name: string, run: () => Promise<unknown>): Promise<void> {
  try {
    print({ type: 'result', name, ok: true, report: await run() })
  } catch (err) {
    print({
      type: 'result',
      name,
      ok: false,
      error: err instanceof Error ? err.message : String(err),
    })
  }
}

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve))
}

for (const fault of FAULT_CASES) await play(fault.name, () => runFaultScenario(fault))
for (const framework of FRAMEWORKS) {
  await play(`50 % 5xx through ${framework}`, () => runFlakyScenario(framework))
}
// Give late rejections (a stray promise settling after its request) time to surface, and closed
// handles time to be released (a closed server or socket is listed until libuv's close callback).
await turns(5)
await new Promise((resolve) => setTimeout(resolve, 150))
await turns(5)
finished = true
print({ type: 'done', unhandled, uncaught, handles: process.getActiveResourcesInfo() })
