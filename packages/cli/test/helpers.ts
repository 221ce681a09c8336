import { createServer } from 'node:http'
import { Readable } from 'node:stream'
import { type Emulator, type EmulatorMachine, startEmulator } from '@m2m-guard/emulator'
import { runCli } from '../src/index.js'

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

/**
 * Runs the command in-process with an injected environment (never the test process's own).
 * `stdin` is a string, or a stream / iterable standing for a pipe.
 */
export async function run(
  argv: string[],
  options: {
    env?: Record<string, string | undefined>
    stdin?: string | AsyncIterable<string | Uint8Array>
    signal?: AbortSignal
  } = {},
): Promise<RunResult> {
  let stdout = ''
  let stderr = ''
  const code = await runCli(argv, {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: options.env ?? {},
    stdin:
      typeof options.stdin === 'string' || options.stdin === undefined
        ? Readable.from([options.stdin ?? ''])
        : options.stdin,
    ...(options.signal ? { signal: options.signal } : {}),
  })
  return { code, stdout, stderr }
}

export interface Fixture {
  emulator: Emulator
  caller: EmulatorMachine
  receiver: EmulatorMachine
  /** A machine no token is scoped to. */
  outsider: EmulatorMachine
  /** Environment pointing at the emulator with the caller's machine key. */
  callerEnv: Record<string, string>
  /** Environment pointing at the emulator with the instance key. */
  instanceEnv: Record<string, string>
}

/** A real emulator on 127.0.0.1, port 0, with caller → receiver scoped. */
export async function startFixture(): Promise<Fixture> {
  const emulator = await startEmulator({ port: 0, host: '127.0.0.1' })
  const receiver = await emulator.createMachine({ name: 'receiver' })
  const caller = await emulator.createMachine({ name: 'caller', scopedMachines: [receiver.id] })
  const outsider = await emulator.createMachine({ name: 'outsider' })
  return {
    emulator,
    caller,
    receiver,
    outsider,
    callerEnv: { CLERK_API_URL: emulator.url, CLERK_MACHINE_SECRET_KEY: caller.secretKey },
    instanceEnv: { CLERK_API_URL: emulator.url, CLERK_SECRET_KEY: emulator.secretKey },
  }
}

/** Parses `field  value` lines of the human output into a record. */
export function fields(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const match = /^(\S+(?: \S+)?)\s{2,}(.*)$/.exec(line)
    if (match?.[1] !== undefined && match[2] !== undefined) out[match[1]] = match[2]
  }
  return out
}

/**
 * A stand-in for the API that answers every request with `status` and `body` (JSON), for answers
 * the emulator never gives: a 200 that says revoked, server text with control characters.
 */
export async function fakeApi(
  status: number,
  body: unknown,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}
