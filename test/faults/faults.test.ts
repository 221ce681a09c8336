/**
 * Fault suite: every fault the emulator can inject, each checked for the guarantees of DESIGN.md
 * (scenario.ts), played in a child process so that "nothing is left open" is a fact: the child
 * must exit by itself, with code 0, soon after its last scenario.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'
import { FRAMEWORKS } from '../fuzz/apps.js'
import { FAULT_CASES } from './scenario.js'

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
// Generous: the scenarios take ~15 s on an idle machine and this box is shared.
const RUN_BOUND_MS = 90_000
// After its last line the child has only to close (it reports an empty set of handles first):
// it must be gone within EXIT_PROMPT_MS, and is killed at EXIT_BOUND_MS.
const EXIT_PROMPT_MS = 3_000
const EXIT_BOUND_MS = 6_000
/**
 * What may legitimately be open when the child reports: its stdout and stderr pipes (stdin is
 * ignored), as PipeWrap (or TTYWrap if run by hand). Everything else is a leak.
 */
const STDIO_RESOURCES = ['PipeWrap', 'TTYWrap']
const STDIO_STREAMS = 2

/** `handles` without the (at most STDIO_STREAMS) entries of the child's own stdio. */
function leaked(handles: readonly string[]): string[] {
  let stdio = STDIO_STREAMS
  return handles.filter((type) => {
    if (stdio > 0 && STDIO_RESOURCES.includes(type)) {
      stdio--
      return false
    }
    return true
  })
}

interface ResultLine {
  type: 'result'
  name: string
  ok: boolean
  error?: string
}
interface DoneLine {
  type: 'done'
  unhandled: string[]
  uncaught: string[]
  handles: string[]
}
/** An unhandled rejection or uncaught exception after the done line. */
interface LateLine {
  type: 'late'
  kind: string
  error: string
}

interface ChildOutcome {
  results: Map<string, ResultLine>
  done: DoneLine | undefined
  late: LateLine[]
  exitCode: number | null
  exitedBySelf: boolean
  msFromDoneToExit: number
  stderr: string
}

function runChild(): Promise<ChildOutcome> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--conditions=@m2m-guard/source', '--import', 'tsx', CHILD],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    const results = new Map<string, ResultLine>()
    let done: DoneLine | undefined
    const late: LateLine[] = []
    let doneAt = 0
    let stderr = ''
    let killed = false
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    createInterface({ input: child.stdout }).on('line', (line) => {
      let parsed: ResultLine | DoneLine | LateLine
      try {
        parsed = JSON.parse(line) as ResultLine | DoneLine | LateLine
      } catch {
        return
      }
      if (parsed.type === 'result') results.set(parsed.name, parsed)
      else if (parsed.type === 'late') late.push(parsed)
      else {
        done = parsed
        doneAt = Date.now()
        // From here on, only leaked handles can keep it alive.
        clearTimeout(runBound)
        exitBound = setTimeout(kill, EXIT_BOUND_MS)
      }
    })
    const kill = () => {
      killed = true
      child.kill('SIGKILL')
    }
    const runBound = setTimeout(kill, RUN_BOUND_MS)
    let exitBound: NodeJS.Timeout | undefined
    // 'close', not 'exit': 'exit' can come before the last lines (the done line) have been read
    // from the pipe.
    child.on('close', (code) => {
      clearTimeout(runBound)
      clearTimeout(exitBound)
      resolve({
        results,
        done,
        late,
        exitCode: code,
        exitedBySelf: !killed,
        msFromDoneToExit: done ? Date.now() - doneAt : Number.NaN,
        stderr,
      })
    })
  })
}

describe('faults from the emulator (in a child process)', () => {
  let outcome: ChildOutcome

  beforeAll(
    async () => {
      outcome = await runChild()
    },
    RUN_BOUND_MS + EXIT_BOUND_MS + 5_000,
  )

  const names = [
    ...FAULT_CASES.map((f) => ({ name: f.name, via: f.framework })),
    ...FRAMEWORKS.map((framework) => ({ name: `50 % 5xx through ${framework}`, via: framework })),
  ]
  for (const { name, via } of names) {
    it(`${name} (${via}): cached served, uncached 503 + Retry-After, nothing admitted, recovers in one cycle`, () => {
      const result = outcome.results.get(name)
      expect(result, `no result line; child stderr:\n${outcome.stderr.slice(-2000)}`).toBeDefined()
      expect(result?.error).toBeUndefined()
      expect(result?.ok).toBe(true)
    })
  }

  it('no unhandled rejection or uncaught exception, during the run or after it', () => {
    expect(
      outcome.done,
      `child never finished; stderr:\n${outcome.stderr.slice(-2000)}`,
    ).toBeDefined()
    expect(outcome.done?.unhandled).toEqual([])
    expect(outcome.done?.uncaught).toEqual([])
    expect(outcome.late).toEqual([])
  })

  it('leaves no socket, server or timer behind: nothing open at the end, and the process exits by itself, promptly, with code 0', () => {
    expect(
      outcome.done,
      `child never finished; stderr:\n${outcome.stderr.slice(-2000)}`,
    ).toBeDefined()
    expect(leaked(outcome.done?.handles ?? []), 'still open after the last scenario').toEqual([])
    expect(
      outcome.exitedBySelf,
      `still alive ${EXIT_BOUND_MS} ms after its last scenario; open handles: ${outcome.done?.handles.join(', ')}`,
    ).toBe(true)
    expect(outcome.msFromDoneToExit, 'ms from the done line to exit').toBeLessThan(EXIT_PROMPT_MS)
    expect(outcome.exitCode, `exit code; stderr:\n${outcome.stderr.slice(-2000)}`).toBe(0)
  })
})
