/**
 * Starts a server under Bun for tests: `entry` runs in a child `bun` process (the `bun` dev
 * dependency) with the packages' source through the `@m2m-guard/source` condition, as every
 * other suite runs it. The entry serves with `serveOnBun` (bun-serve.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { stopViaStdin } from './child.js'

/** A server running in a child Bun process. */
export interface BunServerProcess {
  /** `http://127.0.0.1:<port>` */
  url: string
  /** The Bun version that printed the listening line. */
  bunVersion: string
  /** Asks the child to close its app and exit; kills it after 5 s. */
  close(): Promise<void>
}

/**
 * The Bun executable installed by the `bun` package (its postinstall puts the native binary at
 * `bin/bun.exe`, whatever the platform).
 *
 * @example
 * spawn(bunExecutable(), ['--version'])
 */
export function bunExecutable(): string {
  const require = createRequire(import.meta.url)
  return join(dirname(require.resolve('bun/package.json')), 'bin', 'bun.exe')
}

async function listeningLine(child: ChildProcess, stderr: () => string): Promise<RegExpExecArray> {
  const lines = createInterface({ input: child.stdout! })
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`bun exited with ${String(code)} before listening:\n${stderr()}`)
  })
  const listening = (async () => {
    for await (const line of lines) {
      const match = /^listening (\d+) (\S+)$/.exec(line)
      if (match) return match
    }
    throw new Error(`bun closed its output before listening:\n${stderr()}`)
  })()
  return Promise.race([listening, exited])
}

/**
 * Runs `entry` under Bun with exactly `env` (plus PATH and HOME) and waits until it listens.
 *
 * @example
 * const server = await startBunServer(ENTRY, { CLERK_API_URL: emulator.url })
 * await fetch(`${server.url}/health`)
 * await server.close()
 */
export async function startBunServer(
  entry: string,
  env: Record<string, string>,
): Promise<BunServerProcess> {
  let errors = ''
  const child = spawn(bunExecutable(), ['--conditions=@m2m-guard/source', entry], {
    env: { PATH: process.env['PATH'], HOME: process.env['HOME'], ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    errors += chunk
  })
  let match: RegExpExecArray
  try {
    match = await listeningLine(child, () => errors)
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  }
  const [, port, bunVersion] = match as unknown as [string, string, string]
  // The version proves the server runs in Bun, not in a Node that happened to be on the PATH.
  if (!/^\d+\.\d+\.\d+/.test(bunVersion)) {
    child.kill('SIGKILL')
    throw new Error(`${entry} did not run under Bun (${bunVersion})`)
  }
  return {
    url: `http://127.0.0.1:${port}`,
    bunVersion,
    close: () => stopViaStdin(child),
  }
}
