/**
 * `m2m-guard emulator`: starts the local Clerk-compatible API, prints what is needed to use it
 * (instance key, machines and their keys, commands to paste), and serves until stopped.
 */
import {
  type Emulator,
  type EmulatorFaults,
  type EmulatorMachine,
  type EmulatorOptions,
  startEmulator,
} from '@m2m-guard/emulator'
import { type CommandSpec, parseCommand } from '../args.js'
import { UsageError } from '../errors.js'
import { table } from '../format.js'
import type { ResolvedIo } from '../io.js'
import { readSeedFile } from '../seed.js'
import { VERSION } from '../version.js'

const DEFAULT_PORT = 4010
const DEFAULT_HOST = '127.0.0.1'

/**
 * `m2m-guard emulator`: its flags and help text.
 *
 * @example
 * process.stdout.write(renderHelp(EMULATOR_SPEC))
 */
export const EMULATOR_SPEC: CommandSpec = {
  name: 'emulator',
  summary:
    'Run a local Clerk-compatible M2M API (tokens, machines, JWKS) until Ctrl-C. No Clerk account needed.',
  usage: [
    '[--port 4010] [--host 127.0.0.1] [--seed FILE] [--data FILE] [--secret-key sk_test_…] [options]',
  ],
  details: [
    'Prints the instance secret key, every machine with its id and secret key, and commands to paste. Without --seed, an empty emulator gets two machines: "caller", which may call "receiver".',
    'Seed file (JSON): {"machines": [{"name": "caller", "scopedMachines": ["receiver"]}, {"name": "receiver", "defaultTokenTtl": 600}]}. Per machine: name (required), id (mch_ + 27 characters), secretKey (ak_…), defaultTokenTtl (seconds, default 3600), scopedMachines (names or ids of machines it may call). Machines that already exist (same name or id, e.g. kept in --data) are not created again.',
    'Stop with Ctrl-C (SIGINT) or SIGTERM: it closes cleanly and exits 0. Exit 2 on a bad flag or seed file, 1 when it cannot start (port in use, unreadable data file).',
  ],
  options: {
    port: {
      type: 'string',
      value: 'N',
      description: `Port to listen on, 0 for any free one (default ${DEFAULT_PORT})`,
    },
    host: {
      type: 'string',
      value: 'HOST',
      description: `Interface to listen on (default ${DEFAULT_HOST})`,
    },
    seed: {
      type: 'string',
      value: 'FILE',
      description: 'Machines to create at start, JSON (see above)',
    },
    data: {
      type: 'string',
      value: 'FILE',
      description: 'Keep state (keys, machines, tokens) in this JSON file across restarts',
    },
    'secret-key': {
      type: 'string',
      value: 'KEY',
      description: 'Instance secret key to use, sk_… (default: generated, or the one in --data)',
    },
    faults: {
      type: 'string',
      value: 'JSON',
      description:
        'Failures to inject, e.g. \'{"latencyMs":200,"errorRate":0.1}\' (latencyMs, errorRate, errorStatus, rateLimit, dropRate, trickleMs, down, operations, seed)',
    },
    json: {
      type: 'boolean',
      description:
        'Print the connection details as one JSON line instead (apiUrl, secretKey, machines)',
    },
  },
  examples: [
    'm2m-guard emulator',
    'm2m-guard emulator --port 0 --seed seed.json --data .emulator.json',
  ],
}

type Values = Record<string, string | boolean | undefined>

function stringValue(values: Values, name: string): string | undefined {
  const value = values[name]
  return typeof value === 'string' ? value : undefined
}

async function options(values: Values, positionals: string[]): Promise<EmulatorOptions> {
  if (positionals.length > 0) {
    throw new UsageError("'m2m-guard emulator' takes no arguments, only options", 'emulator')
  }
  const rawPort = stringValue(values, 'port')
  let port = DEFAULT_PORT
  if (rawPort !== undefined) {
    port = Number(rawPort)
    if (!/^\d+$/.test(rawPort) || port > 65_535) {
      throw new UsageError('--port must be an integer from 0 to 65535', 'emulator')
    }
  }
  const host = stringValue(values, 'host') ?? DEFAULT_HOST
  if (host.trim() === '') throw new UsageError('--host must not be empty', 'emulator')
  const result: EmulatorOptions = { port, host }
  const secretKey = stringValue(values, 'secret-key')
  if (secretKey !== undefined) {
    // The value is never echoed: it is a secret.
    if (!/^sk_[\x21-\x7e]+$/.test(secretKey)) {
      throw new UsageError(
        '--secret-key must be an instance key: sk_ followed by visible ASCII characters',
        'emulator',
      )
    }
    result.secretKey = secretKey
  }
  const data = stringValue(values, 'data')
  if (data !== undefined) {
    if (data === '') throw new UsageError('--data must name a file', 'emulator')
    result.dataFile = data
  }
  const seed = stringValue(values, 'seed')
  if (seed !== undefined) result.seed = await readSeedFile(seed)
  const faults = stringValue(values, 'faults')
  if (faults !== undefined) {
    let parsed: unknown
    try {
      parsed = JSON.parse(faults)
    } catch (cause) {
      throw new UsageError(`--faults must be valid JSON, e.g. '{"latencyMs":200}'`, 'emulator', {
        cause,
      })
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new UsageError('--faults must be a JSON object', 'emulator')
    }
    // Its fields are checked by the emulator itself (a TypeError naming the field, exit 2).
    result.faults = parsed as EmulatorFaults
  }
  return result
}

async function start(opts: EmulatorOptions): Promise<Emulator> {
  try {
    return await startEmulator(opts)
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') {
      throw new Error(
        `port ${opts.port} is already in use; pick another with --port (0 = any free port)`,
        {
          cause,
        },
      )
    }
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EACCES') {
      throw new Error(`cannot listen on ${opts.host}:${opts.port} (${code})`, { cause })
    }
    // The emulator rejects bad options (seed references, faults) with TypeError / RangeError.
    if (cause instanceof TypeError || cause instanceof RangeError) {
      throw new UsageError(cause.message, 'emulator', { cause })
    }
    throw cause
  }
}

/**
 * Runs `m2m-guard emulator` with the arguments after `emulator`. Resolves when `io.signal`
 * aborts (after a clean close), with 0.
 *
 * @throws {UsageError} for a bad flag or seed file; `Error` when the emulator cannot start.
 * @example
 * const stop = new AbortController()
 * const done = runEmulator(['--port', '0'], { ...resolveIo(), signal: stop.signal })
 * stop.abort()
 * await done // 0
 */
export async function runEmulator(args: readonly string[], io: ResolvedIo): Promise<number> {
  const { values, positionals } = parseCommand(EMULATOR_SPEC, args)
  const opts = await options(values, positionals)
  if (io.signal?.aborted) return 0
  const emulator = await start(opts)
  try {
    // An empty emulator without a seed gets a pair to play with; with --data it is kept, so a
    // restart finds it and creates nothing.
    if (opts.seed === undefined && emulator.listMachines().length === 0) {
      const receiver = await emulator.createMachine({ name: 'receiver' })
      await emulator.createMachine({ name: 'caller', scopedMachines: [receiver.id] })
    }
    const machines = emulator.listMachines()
    io.stdout.write(
      values.json === true
        ? `${JSON.stringify(connectionInfo(emulator, machines))}\n`
        : banner(emulator, machines, opts),
    )
    await aborted(io.signal)
  } finally {
    await emulator.close()
  }
  if (values.json !== true) io.stdout.write('Emulator stopped.\n')
  return 0
}

/**
 * What `m2m-guard emulator --json` prints, as one line, once the emulator is ready.
 *
 * @example
 * const info: EmulatorConnectionInfo = JSON.parse(firstLineOfStdout)
 * process.env.CLERK_API_URL = info.url
 */
export interface EmulatorConnectionInfo {
  /** Origin, what `--api-url` / CLERK_API_URL take. */
  url: string
  /** `url + '/v1'`. */
  apiUrl: string
  jwksUrl: string
  /** The instance secret key, sk_…. */
  secretKey: string
  machines: Pick<
    EmulatorMachine,
    'name' | 'id' | 'secretKey' | 'defaultTokenTtl' | 'scopedMachines'
  >[]
}

function connectionInfo(emulator: Emulator, machines: EmulatorMachine[]): EmulatorConnectionInfo {
  return {
    url: emulator.url,
    apiUrl: emulator.apiUrl,
    jwksUrl: emulator.jwksUrl,
    secretKey: emulator.secretKey,
    machines: machines.map((m) => ({
      name: m.name,
      id: m.id,
      secretKey: m.secretKey,
      defaultTokenTtl: m.defaultTokenTtl,
      scopedMachines: m.scopedMachines,
    })),
  }
}

function aborted(signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return new Promise(() => {})
  if (signal.aborted) return Promise.resolve()
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
}

/** Single-quotes a word for POSIX shells (keys and URLs never hold a quote, but be exact). */
function sh(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

function banner(emulator: Emulator, machines: EmulatorMachine[], opts: EmulatorOptions): string {
  const byId = new Map(machines.map((m) => [m.id, m]))
  const nameOf = (id: string) => byId.get(id)?.name ?? id
  // The demo pair: a machine allowed to call another; without scopes, verify uses the instance key.
  const caller = machines.find((m) => m.scopedMachines.length > 0) ?? machines[0]
  const receiver = caller ? byId.get(caller.scopedMachines[0] ?? '') : undefined
  const url = emulator.url
  const out: string[] = []
  out.push(
    `m2m-guard emulator ${VERSION}: a local Clerk-compatible M2M API, no Clerk account needed`,
    '',
  )
  out.push(
    table(
      [
        ['API URL', url],
        ['instance secret key', emulator.secretKey],
        ['JWKS', emulator.jwksUrl],
        ...(opts.dataFile ? [['data file', opts.dataFile]] : []),
      ],
      '  ',
    ),
  )
  out.push('Machines')
  out.push(
    machines.length === 0
      ? '  (none: pass --seed FILE, or create them with the Machines API)'
      : table(
          [
            ['NAME', 'ID', 'SECRET KEY', 'MAY CALL'],
            ...machines.map((m) => [
              m.name,
              m.id,
              m.secretKey,
              m.scopedMachines.length ? m.scopedMachines.map(nameOf).join(', ') : '-',
            ]),
          ],
          '  ',
        ).trimEnd(),
  )
  if (caller !== undefined) {
    const verifyKey = receiver?.secretKey ?? emulator.secretKey
    const verifyAs = receiver
      ? `as ${receiver.name} (the token is scoped to it)`
      : 'with the instance key'
    const auth = (key: string) => `-H ${sh(`Authorization: Bearer ${key}`)}`
    const jsonBody = `-H 'Content-Type: application/json'`
    out.push(
      '',
      `Use it with m2m-guard, as ${caller.name} (in another terminal):`,
      `  export CLERK_API_URL=${sh(url)}`,
      `  export CLERK_MACHINE_SECRET_KEY=${sh(caller.secretKey)}`,
      '  TOKEN=$(npx m2m-guard tokens create --token-only)',
      `  npx m2m-guard tokens list --subject ${caller.id}`,
      `  printf %s "$TOKEN" | npx m2m-guard tokens verify - --secret-key ${sh(verifyKey)}`,
      '',
      'Or with curl:',
      `  # create a token as ${caller.name} (needs a machine key), keep its secret and id`,
      `  RESPONSE=$(curl -sS -X POST ${sh(`${url}/v1/m2m_tokens`)} ${auth(caller.secretKey)} ${jsonBody} -d '{"seconds_until_expiration":3600}'); echo "$RESPONSE"`,
      `  TOKEN=$(node -p 'JSON.parse(process.argv[1]).token' "$RESPONSE"); TOKEN_ID=$(node -p 'JSON.parse(process.argv[1]).id' "$RESPONSE")`,
      `  # list ${caller.name}'s tokens (instance key)`,
      `  curl -sS ${sh(`${url}/v1/m2m_tokens?subject=${caller.id}`)} ${auth(emulator.secretKey)}`,
      `  # verify ${verifyAs}`,
      `  curl -sS -X POST ${sh(`${url}/v1/m2m_tokens/verify`)} ${auth(verifyKey)} ${jsonBody} -d "{\\"token\\":\\"$TOKEN\\"}"`,
      '  # revoke it (instance key)',
      `  curl -sS -X POST "${url}/v1/m2m_tokens/$TOKEN_ID/revoke" ${auth(emulator.secretKey)} ${jsonBody} -d '{"revocation_reason":"demo"}'`,
    )
  }
  out.push('', `Listening on ${url}. Press Ctrl-C to stop.`, '')
  return out.join('\n')
}
