/**
 * Runs every fault scenario in a process of its own and prints one JSON line per scenario, then
 * `{ "type": "done" }`. It never calls process.exit: faults.test.ts asserts that it exits by
 * itself, which it only does when no socket, server or timer was left behind.
 */

import { FRAMEWORKS } from '../fuzz/apps.js'
import { FAULT_CASES, runFaultScenario, runFlakyScenario } from './scenario.js'

// Tracked, not fatal: the parent fails the suite on any, with the reason.
const unhandled: string[] = []
process.on('unhandledRejection', (reason) => {
  unhandled.push(reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason))
})

function print(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`)
}

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

for (const fault of FAULT_CASES) await play(fault.name, () => runFaultScenario(fault))
for (const framework of FRAMEWORKS) {
  await play(`50 % 5xx through ${framework}`, () => runFlakyScenario(framework))
}
// Give late rejections (a stray promise settling after its request) a turn to surface.
await new Promise((resolve) => setImmediate(resolve))
print({ type: 'done', unhandled, handles: process.getActiveResourcesInfo() })
