/**
 * `m2m-guard tokens create | list | revoke | verify`: one flag per parameter of each operation of
 * spec/clerk-bapi-m2m.yml, through the same client the middleware uses.
 */
import {
  type CreateTokenParams,
  createM2MClient,
  type M2MClient,
  type M2MToken,
  type RequestOptions,
} from '@m2m-guard/core'
import { type CommandSpec, type OptionSpec, parseCommand, renderHelp, wantsHelp } from '../args.js'
import { UsageError } from '../errors.js'
import { formatToken, formatTokenTable, json, printable } from '../format.js'
import type { ResolvedIo } from '../io.js'
import { quoteWord } from '../words.js'

/** Where the CLI sends requests when neither `--api-url` nor CLERK_API_URL is set (as the client). */
const DEFAULT_API_URL = 'https://api.clerk.com'
const SUBJECT_PATTERN = /^mch_\w{27}$/
const TOKEN_ID_PATTERN = /^mt_[0-9A-Fa-f]{32}$/
/** A token is at most 4 KiB; stdin past this holds something else (`< /dev/zero`, a file). */
const MAX_STDIN_BYTES = 64 * 1024

const COMMON: Record<string, OptionSpec> = {
  'api-url': {
    type: 'string',
    value: 'URL',
    description: `API origin, with or without /v1 (env CLERK_API_URL; default ${DEFAULT_API_URL})`,
  },
  'secret-key': {
    type: 'string',
    value: 'KEY',
    description:
      'ak_… machine key or sk_… instance key (env CLERK_MACHINE_SECRET_KEY, then CLERK_SECRET_KEY; prefer the env, flags stay in shell history)',
  },
  'timeout-ms': {
    type: 'string',
    value: 'N',
    description: 'Deadline of the call in ms, retries included (default 5000)',
  },
  json: { type: 'boolean', description: 'Print the decoded object(s) as JSON, for scripts' },
}

const EXIT_CODES =
  'Exit codes: 0 ok, 1 API or connection error (message and Clerk trace id on stderr), 2 usage error, 130 interrupted (Ctrl-C, SIGINT), 143 terminated (SIGTERM).'

/**
 * `m2m-guard tokens`: its flags and help text.
 *
 * @example
 * process.stdout.write(renderHelp(TOKENS_SPEC))
 */
export const TOKENS_SPEC: CommandSpec = {
  name: 'tokens',
  summary: 'Create, list, revoke and verify M2M tokens, against Clerk or the emulator.',
  usage: ['<command> [options]'],
  details: [
    'The key comes from --secret-key, else CLERK_MACHINE_SECRET_KEY, else CLERK_SECRET_KEY; the API from --api-url, else CLERK_API_URL, else https://api.clerk.com.',
    EXIT_CODES,
  ],
  commands: [
    ['create', 'Create a token (needs a machine key, ak_…)'],
    ['list', "List a machine's tokens"],
    ['revoke', 'Revoke a token by id'],
    ['verify', 'Verify a token'],
  ],
  options: {},
  examples: ['m2m-guard tokens create --help'],
}

/**
 * `m2m-guard tokens create`: its flags and help text.
 *
 * @example
 * process.stdout.write(renderHelp(CREATE_SPEC))
 */
export const CREATE_SPEC: CommandSpec = {
  name: 'tokens create',
  summary: 'Create an M2M token (POST /m2m_tokens). Needs a machine secret key (ak_…).',
  usage: ['[options]'],
  details: ['Prints the new token (its secret is shown only here) and its record. ' + EXIT_CODES],
  options: {
    'seconds-until-expiration': {
      type: 'string',
      value: 'N',
      description: "Lifetime in seconds, > 0 (default: the machine's default TTL)",
    },
    'no-expiration': { type: 'boolean', description: 'Create a token that never expires' },
    claims: { type: 'string', value: 'JSON', description: 'Claims to attach, a JSON object' },
    'token-format': {
      type: 'string',
      value: 'FORMAT',
      description: 'opaque (default, revocable) or jwt',
    },
    'min-remaining-ttl-seconds': {
      type: 'string',
      value: 'N',
      description:
        'Reuse a live token with the same claims and at least N seconds left (opaque only; N < lifetime)',
    },
    'token-only': { type: 'boolean', description: 'Print only the token, e.g. TOKEN=$(…)' },
    ...COMMON,
  },
  examples: [
    'm2m-guard tokens create --seconds-until-expiration 600 --claims \'{"job":"nightly"}\'',
    'TOKEN=$(m2m-guard tokens create --token-only)',
  ],
}

/**
 * `m2m-guard tokens list`: its flags and help text.
 *
 * @example
 * process.stdout.write(renderHelp(LIST_SPEC))
 */
export const LIST_SPEC: CommandSpec = {
  name: 'tokens list',
  summary: "List a machine's opaque tokens (GET /m2m_tokens). JWT-format tokens are not stored.",
  usage: ['--subject mch_… [options]'],
  details: [
    'A machine key lists only its own tokens; an instance key lists any machine. ' + EXIT_CODES,
  ],
  options: {
    subject: { type: 'string', value: 'MACHINE_ID', description: 'The machine, mch_… (required)' },
    revoked: { type: 'boolean', description: 'Include revoked tokens' },
    expired: { type: 'boolean', description: 'Include expired tokens' },
    limit: {
      type: 'string',
      value: 'N',
      description: 'Page size, 1–100 (default 10; with --all 100)',
    },
    offset: { type: 'string', value: 'N', description: 'Tokens to skip, ≥ 0 (default 0)' },
    all: { type: 'boolean', description: 'Fetch every page (not with --offset)' },
    ...COMMON,
  },
  examples: ['m2m-guard tokens list --subject mch_… --revoked --all'],
}

/**
 * `m2m-guard tokens revoke`: its flags and help text.
 *
 * @example
 * process.stdout.write(renderHelp(REVOKE_SPEC))
 */
export const REVOKE_SPEC: CommandSpec = {
  name: 'tokens revoke',
  summary: 'Revoke an opaque token (POST /m2m_tokens/{m2m_token_id}/revoke).',
  usage: ['<m2m_token_id> [--reason TEXT] [options]'],
  details: [
    "Takes the token's id (mt_ + 32 hex), not its secret. A machine key revokes only its own tokens. " +
      EXIT_CODES,
  ],
  options: {
    reason: {
      type: 'string',
      value: 'TEXT',
      description: 'Revocation reason, stored on the token',
    },
    ...COMMON,
  },
  examples: ['m2m-guard tokens revoke mt_0123456789abcdef0123456789abcdef --reason rotated'],
}

/**
 * `m2m-guard tokens verify`: its flags and help text.
 *
 * @example
 * process.stdout.write(renderHelp(VERIFY_SPEC))
 */
export const VERIFY_SPEC: CommandSpec = {
  name: 'tokens verify',
  summary: 'Verify a token (POST /m2m_tokens/verify) and print its record.',
  usage: [
    '<token> [options]',
    '- [options]   (reads the token from stdin)',
    '--token TOKEN [options]',
  ],
  details: [
    "Use '-' to read the token from stdin (at most 64 KiB) and keep it out of shell history. A machine key verifies only tokens scoped to it. " +
      'Unknown, revoked or expired tokens exit 1. ' +
      EXIT_CODES,
  ],
  options: {
    token: { type: 'string', value: 'TOKEN', description: 'The token, instead of the argument' },
    ...COMMON,
  },
  examples: [
    'printf %s "$TOKEN" | m2m-guard tokens verify -',
    'm2m-guard tokens verify "$TOKEN" --json',
  ],
}

const SUBCOMMANDS: Record<string, { spec: CommandSpec; run: Runner }> = {
  create: { spec: CREATE_SPEC, run: runCreate },
  list: { spec: LIST_SPEC, run: runList },
  revoke: { spec: REVOKE_SPEC, run: runRevoke },
  verify: { spec: VERIFY_SPEC, run: runVerify },
}

type Values = Record<string, string | boolean | undefined>
type Runner = (
  spec: CommandSpec,
  values: Values,
  positionals: string[],
  io: ResolvedIo,
) => Promise<number>

/**
 * Runs `m2m-guard tokens …` with the arguments after `tokens`.
 *
 * @throws {UsageError} for a bad invocation; API and connection errors propagate as thrown by
 * the client.
 * @example
 * const code = await runTokens(['verify', '-'], resolveIo())
 */
export async function runTokens(args: readonly string[], io: ResolvedIo): Promise<number> {
  const [name, ...rest] = args
  if (name === undefined || name.startsWith('-')) {
    if (wantsHelp(args)) {
      io.stdout.write(renderHelp(TOKENS_SPEC))
      return 0
    }
    throw new UsageError(
      name === undefined
        ? 'missing command: create, list, revoke or verify'
        : `unknown option ${name.split('=')[0]}`,
      'tokens',
    )
  }
  const sub = Object.hasOwn(SUBCOMMANDS, name) ? SUBCOMMANDS[name] : undefined
  if (sub === undefined) {
    throw new UsageError(
      `unknown command${quoteWord(name)}: expected create, list, revoke or verify`,
      'tokens',
    )
  }
  if (wantsHelp(rest)) {
    io.stdout.write(renderHelp(sub.spec))
    return 0
  }
  const { values, positionals } = parseCommand(sub.spec, rest)
  return sub.run(sub.spec, values, positionals, io)
}

function stringValue(values: Values, name: string): string | undefined {
  const value = values[name]
  return typeof value === 'string' ? value : undefined
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim()
}

/**
 * Parses a decimal flag value. Strict on purpose: `Number('')`, `'1e3'` or `'0x10'` would
 * silently become numbers.
 */
function parseNumber(
  spec: CommandSpec,
  flag: string,
  raw: string,
  rule: { integer: boolean; min: number; max?: number; exclusiveMin?: boolean },
): number {
  const pattern = rule.integer ? /^\d+$/ : /^\d+(\.\d+)?$/
  const value = Number(raw)
  const ok =
    pattern.test(raw) &&
    Number.isSafeInteger(Math.trunc(value)) &&
    (rule.exclusiveMin ? value > rule.min : value >= rule.min) &&
    (rule.max === undefined || value <= rule.max)
  if (!ok) {
    const kind = rule.integer ? 'an integer' : 'a number'
    const range =
      rule.max !== undefined
        ? `from ${rule.min} to ${rule.max}`
        : `${rule.exclusiveMin ? '>' : '≥'} ${rule.min}`
    throw new UsageError(`--${flag} must be ${kind} ${range}`, spec.name)
  }
  return value
}

function optionalNumber(
  spec: CommandSpec,
  values: Values,
  flag: string,
  rule: { integer: boolean; min: number; max?: number; exclusiveMin?: boolean },
): number | undefined {
  const raw = stringValue(values, flag)
  return raw === undefined ? undefined : parseNumber(spec, flag, raw, rule)
}

function noPositionals(spec: CommandSpec, positionals: string[]): void {
  // The value is not echoed: a misplaced argument may well be a token.
  if (positionals.length > 0) {
    throw new UsageError(`'m2m-guard ${spec.name}' takes no arguments, only options`, spec.name)
  }
}

/**
 * Builds the client from flags and the environment, with the client's own precedence (an
 * explicit key, then CLERK_MACHINE_SECRET_KEY, then CLERK_SECRET_KEY). Resolved here, not in the
 * client, so that an injected `env` is the only environment consulted.
 */
function connect(spec: CommandSpec, values: Values, io: ResolvedIo): M2MClient {
  const secretKey =
    nonEmpty(stringValue(values, 'secret-key')) ??
    nonEmpty(io.env.CLERK_MACHINE_SECRET_KEY) ??
    nonEmpty(io.env.CLERK_SECRET_KEY)
  if (secretKey === undefined) {
    throw new UsageError(
      'no secret key: pass --secret-key, or set CLERK_MACHINE_SECRET_KEY (machine key, ak_…) or CLERK_SECRET_KEY (instance key, sk_…)',
      spec.name,
    )
  }
  const apiUrl =
    nonEmpty(stringValue(values, 'api-url')) ?? nonEmpty(io.env.CLERK_API_URL) ?? DEFAULT_API_URL
  const timeoutMs = optionalNumber(spec, values, 'timeout-ms', {
    integer: true,
    min: 1,
    max: 2_147_483_647,
  })
  try {
    return createM2MClient({ secretKey, apiUrl, ...(timeoutMs === undefined ? {} : { timeoutMs }) })
  } catch (cause) {
    // The client names the option (`apiUrl`, …); say which flag or variable that was.
    if (cause instanceof TypeError || cause instanceof RangeError) {
      const message = cause.message
        .replace(/^createM2MClient: /, '')
        .replace('`apiUrl`', 'the API URL (--api-url or CLERK_API_URL)')
        .replace('`timeoutMs`', '--timeout-ms')
      throw new UsageError(message, spec.name, {
        cause,
      })
    }
    throw cause
  }
}

function requestOptions(io: ResolvedIo): RequestOptions {
  return io.signal ? { signal: io.signal } : {}
}

async function runCreate(spec: CommandSpec, values: Values, positionals: string[], io: ResolvedIo) {
  noPositionals(spec, positionals)
  const params: CreateTokenParams = {}
  const seconds = optionalNumber(spec, values, 'seconds-until-expiration', {
    integer: false,
    min: 0,
    exclusiveMin: true,
  })
  if (values['no-expiration'] === true) {
    if (seconds !== undefined) {
      throw new UsageError(
        '--no-expiration and --seconds-until-expiration exclude each other',
        spec.name,
      )
    }
    params.secondsUntilExpiration = null
  } else if (seconds !== undefined) {
    params.secondsUntilExpiration = seconds
  }
  const claims = stringValue(values, 'claims')
  if (claims !== undefined) {
    let parsed: unknown
    try {
      parsed = JSON.parse(claims)
    } catch (cause) {
      throw new UsageError(`--claims must be valid JSON, e.g. '{"job":"nightly"}'`, spec.name, {
        cause,
      })
    }
    if (parsed !== null && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new UsageError('--claims must be a JSON object (or null)', spec.name)
    }
    params.claims = parsed as Record<string, unknown> | null
  }
  const format = stringValue(values, 'token-format')
  if (format !== undefined) {
    if (format !== 'opaque' && format !== 'jwt') {
      throw new UsageError('--token-format must be opaque or jwt', spec.name)
    }
    params.tokenFormat = format
  }
  const minTtl = optionalNumber(spec, values, 'min-remaining-ttl-seconds', {
    integer: true,
    min: 0,
  })
  if (minTtl !== undefined) params.minRemainingTtlSeconds = minTtl
  if (values['token-only'] === true && values.json === true) {
    throw new UsageError('--token-only and --json exclude each other', spec.name)
  }
  const client = connect(spec, values, io)
  const created = await callClient(spec, () => client.createToken(params, requestOptions(io)))
  if (values['token-only'] === true) io.stdout.write(`${printable(created.token)}\n`)
  else io.stdout.write(values.json === true ? json(created) : formatToken(created))
  return 0
}

async function runList(spec: CommandSpec, values: Values, positionals: string[], io: ResolvedIo) {
  noPositionals(spec, positionals)
  const subject = stringValue(values, 'subject')
  if (subject === undefined) {
    throw new UsageError(
      '--subject is required: the machine whose tokens to list (mch_…)',
      spec.name,
    )
  }
  if (!SUBJECT_PATTERN.test(subject)) {
    throw new UsageError(
      '--subject must be a machine id: mch_ followed by 27 letters, digits or _',
      spec.name,
    )
  }
  const limit = optionalNumber(spec, values, 'limit', { integer: true, min: 1, max: 100 })
  const offset = optionalNumber(spec, values, 'offset', { integer: true, min: 0 })
  const filters = {
    subject,
    ...(values.revoked === true ? { revoked: true } : {}),
    ...(values.expired === true ? { expired: true } : {}),
  }
  if (values.all === true && offset !== undefined) {
    throw new UsageError('--all reads every page; drop --offset', spec.name)
  }
  const client = connect(spec, values, io)
  if (values.all === true) {
    const tokens: M2MToken[] = []
    const pages = client.listAllTokens(
      { ...filters, ...(limit === undefined ? {} : { pageSize: limit }) },
      requestOptions(io),
    )
    await callClient(spec, async () => {
      for await (const token of pages) tokens.push(token)
    })
    if (values.json === true)
      io.stdout.write(json({ m2mTokens: tokens, totalCount: tokens.length }))
    else io.stdout.write(`${formatTokenTable(tokens)}${plural(tokens.length)}\n`)
    return 0
  }
  const page = await callClient(spec, () =>
    client.listTokens(
      {
        ...filters,
        ...(limit === undefined ? {} : { limit }),
        ...(offset === undefined ? {} : { offset }),
      },
      requestOptions(io),
    ),
  )
  if (values.json === true) {
    io.stdout.write(json(page))
  } else {
    const from = offset ?? 0
    const shown = page.m2mTokens.length
    const range = shown === 0 ? 'none' : `${from + 1}–${from + shown}`
    io.stdout.write(`${formatTokenTable(page.m2mTokens)}${range} of ${plural(page.totalCount)}\n`)
  }
  return 0
}

function plural(count: number): string {
  return `${count} token${count === 1 ? '' : 's'}`
}

async function runRevoke(spec: CommandSpec, values: Values, positionals: string[], io: ResolvedIo) {
  const [id, ...extra] = positionals
  if (id === undefined) throw new UsageError('missing <m2m_token_id> (mt_…)', spec.name)
  if (extra.length > 0)
    throw new UsageError('expected one <m2m_token_id>, got more arguments', spec.name)
  if (!TOKEN_ID_PATTERN.test(id)) {
    throw new UsageError(
      "<m2m_token_id> must be a token id, mt_ followed by 32 hex characters (the token's id, not its secret)",
      spec.name,
    )
  }
  const reason = stringValue(values, 'reason')
  const client = connect(spec, values, io)
  const revoked = await callClient(spec, () =>
    client.revokeToken(
      { m2mTokenId: id, ...(reason === undefined ? {} : { revocationReason: reason }) },
      requestOptions(io),
    ),
  )
  io.stdout.write(values.json === true ? json(revoked) : formatToken(revoked))
  return 0
}

async function runVerify(spec: CommandSpec, values: Values, positionals: string[], io: ResolvedIo) {
  const flag = stringValue(values, 'token')
  if (positionals.length > 1 || (flag !== undefined && positionals.length > 0)) {
    throw new UsageError(
      'give the token once: as the argument, with --token, or - for stdin',
      spec.name,
    )
  }
  const source = flag ?? positionals[0]
  if (source === undefined) {
    throw new UsageError(
      'missing <token>: pass it as the argument, with --token, or - to read stdin',
      spec.name,
    )
  }
  if (source === '-' && (io.stdin as { isTTY?: boolean }).isTTY === true) {
    // Otherwise a terminal user sees a command that seems to hang.
    io.stderr.write('Paste the token, then press Enter and Ctrl-D:\n')
  }
  const token = source === '-' ? (await readStdin(spec, io)).trim() : source
  if (token === '') {
    throw new UsageError(source === '-' ? 'stdin held no token' : 'the token is empty', spec.name)
  }
  const client = connect(spec, values, io)
  const verified = await callClient(spec, () => client.verifyToken({ token }, requestOptions(io)))
  io.stdout.write(values.json === true ? json(verified) : formatToken(verified))
  // A 200 can still describe a token that must not be accepted: exit 1, as an API error.
  if (verified.revoked || verified.expired) {
    const state = [verified.revoked ? 'revoked' : '', verified.expired ? 'expired' : '']
      .filter(Boolean)
      .join(' and ')
    io.stderr.write(`m2m-guard ${spec.name}: the token is ${state}: not valid\n`)
    return 1
  }
  return 0
}

/**
 * Reads stdin to its end for `verify -`. An abort of `io.signal` ends the read at once (its
 * reason is thrown, and `runCli` reports the interruption); so does more than MAX_STDIN_BYTES.
 * Either way stdin is closed, so that it no longer keeps the process alive.
 */
async function readStdin(spec: CommandSpec, io: ResolvedIo): Promise<string> {
  const { stdin, signal } = io
  signal?.throwIfAborted()
  const chunks = stdin[Symbol.asyncIterator]()
  let onAbort = () => {}
  // Settles only on an abort; the read it wins against stays pending, its outcome ignored.
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal?.reason)
  })
  signal?.addEventListener('abort', onAbort, { once: true })
  const decoder = new TextDecoder()
  let text = ''
  let bytes = 0
  try {
    for (;;) {
      const { done, value } = await Promise.race([chunks.next(), aborted])
      if (done) return text + decoder.decode()
      bytes += typeof value === 'string' ? Buffer.byteLength(value) : value.byteLength
      if (bytes > MAX_STDIN_BYTES) {
        throw new UsageError(
          'stdin holds more than 64 KiB: a token is at most 4 KiB; pipe in only the token',
          spec.name,
        )
      }
      text += typeof value === 'string' ? value : decoder.decode(value, { stream: true })
    }
  } catch (err) {
    // A read may still be pending: destroying the stream ends it (return() alone would wait).
    ;(stdin as { destroy?: () => void }).destroy?.()
    chunks.return?.().catch(() => {})
    throw err
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}

const CLIENT_VALIDATION = /^(createToken|listTokens|listAllTokens|revokeToken|verifyToken): /

/**
 * Runs a client call, turning the client's own parameter checks (TypeError / RangeError named
 * after the method, thrown before any request) into usage errors: exit 2, not 1.
 */
async function callClient<T>(spec: CommandSpec, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (cause) {
    if (
      (cause instanceof TypeError || cause instanceof RangeError) &&
      CLIENT_VALIDATION.test(cause.message)
    ) {
      throw new UsageError(cause.message.replace(CLIENT_VALIDATION, ''), spec.name, { cause })
    }
    throw cause
  }
}
