/**
 * The `npm start` demo: a guided walk through machine-to-machine auth, fully offline. It starts
 * the Clerk emulator, creates three machines, boots the Express, Fastify and Hono examples, and
 * shows each request and answer. `--once` runs the walk and exits non-zero on any surprise.
 *
 * Run through scripts/start.mjs (tsx, with the packages' source export condition).
 */
import { existsSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { type Emulator, type EmulatorMachine, startEmulator } from '@m2m-guard/emulator'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const once = process.argv.includes('--once')

// — presentation ------------------------------------------------------------------------------

const useColor = process.stdout.isTTY === true && !('NO_COLOR' in process.env)
const paint = (code: number) => (text: string) => (useColor ? `\x1b[${code}m${text}\x1b[0m` : text)
const bold = paint(1)
const dim = paint(2)
const green = paint(32)
const red = paint(31)
const cyan = paint(36)
const yellow = paint(33)

const say = (line = ''): void => {
  process.stdout.write(`${line}\n`)
}

/** Shows a token the way a log should: enough to recognise it, never enough to use it. */
function redact(token: string): string {
  return `${token.slice(0, 6)}…`
}

function statusText(status: number): string {
  const texts: Record<number, string> = {
    200: 'OK',
    201: 'Created',
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    500: 'Internal Server Error',
    503: 'Service Unavailable',
  }
  return `${status} ${texts[status] ?? ''}`.trim()
}

// — the example servers -------------------------------------------------------------------------

interface RunningServer {
  url: string
  close(): Promise<void>
}

interface StartOptions {
  port?: number
  apiUrl?: string
  secretKey?: string
  machineId?: string
  cacheTtlMs?: number
}

interface ExampleModule {
  start(options: StartOptions): Promise<RunningServer>
}

const EXAMPLES = [
  { name: 'express', port: 3001 },
  { name: 'fastify', port: 3002 },
  { name: 'hono-node', port: 3003 },
] as const

/** The example's server module. */
function exampleServerPath(name: string): string {
  const path = `${ROOT}examples/${name}/src/server.ts`
  if (existsSync(path)) return path
  throw new DemoError(`The ${name} example is missing (examples/${name}/src/server.ts).`)
}

/** A failure to explain to the person running the demo, without a stack trace. */
class DemoError extends Error {
  override name = 'DemoError'
}

// — the walk ------------------------------------------------------------------------------------

interface Expectation {
  status: number
  /** For 200: the machine whose identity the server must report. */
  caller?: string
  /** For errors: the `error` code of the JSON body. */
  error?: string
}

let surprises = 0
let answers = 0

async function call(
  label: string,
  url: string,
  token: string | undefined,
  expected: Expectation,
): Promise<void> {
  say(
    `   ${cyan('→')} GET ${url}${token ? dim(`   Authorization: Bearer ${redact(token)}`) : dim('   (no Authorization header)')}`,
  )
  let status: number
  let body: unknown
  let headers: Headers
  try {
    const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} })
    status = res.status
    headers = res.headers
    const text = await res.text()
    try {
      body = JSON.parse(text)
    } catch {
      body = text
    }
  } catch (err) {
    surprises++
    say(`   ${red('✗')} ${label}: no answer (${err instanceof Error ? err.message : String(err)})`)
    return
  }
  answers++
  const record = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>
  const ok =
    status === expected.status &&
    (expected.caller === undefined || record['caller'] === expected.caller) &&
    (expected.error === undefined || record['error'] === expected.error)
  if (!ok) surprises++
  const mark = ok
    ? green('✓')
    : red(`✗ expected ${expected.status}${expected.error ? ` ${expected.error}` : ''}`)
  say(`   ${cyan('←')} ${bold(statusText(status))} ${dim(`from ${label}`)}  ${mark}`)
  const www = headers.get('www-authenticate')
  if (www) say(`     ${dim('WWW-Authenticate:')} ${www}`)
  const retryAfter = headers.get('retry-after')
  if (retryAfter) say(`     ${dim('Retry-After:')} ${retryAfter}`)
  say(`     ${dim(JSON.stringify(body))}`)
}

function step(n: number, title: string, ...explanation: string[]): void {
  say()
  say(bold(`${n}. ${title}`))
  for (const line of explanation) say(`   ${dim(line)}`)
}

// A fixed, obviously local key for the caller, so the curl lines printed at the end can use it.
// It only exists inside this emulator run.
const CALLER_KEY = 'ak_demo_nightly_job_local_only'

async function mintToken(
  apiUrl: string,
  machineKey: string,
  keyLabel: string,
): Promise<{ token: string; id: string }> {
  say(`   ${cyan('→')} POST ${apiUrl}/m2m_tokens   ${dim(`Authorization: Bearer <${keyLabel}>`)}`)
  const res = await fetch(`${apiUrl}/m2m_tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${machineKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ seconds_until_expiration: 3600 }),
  })
  const body = (await res.json()) as { token?: string; id?: string; scopes?: string[] }
  if (res.status !== 200 && res.status !== 201)
    throw new DemoError(`The emulator refused to mint a token (${res.status}).`)
  if (typeof body.token !== 'string' || typeof body.id !== 'string')
    throw new DemoError('The emulator answered without a token.')
  say(
    `   ${cyan('←')} ${bold(statusText(res.status))}  token ${yellow(redact(body.token))} ${dim(`(id ${body.id}, scopes ${JSON.stringify(body.scopes ?? [])}, valid 1 h)`)}`,
  )
  return { token: body.token, id: body.id }
}

async function revokeToken(apiUrl: string, instanceKey: string, id: string): Promise<void> {
  say(
    `   ${cyan('→')} POST ${apiUrl}/m2m_tokens/${id}/revoke   ${dim('Authorization: Bearer <instance secret key>')}`,
  )
  const res = await fetch(`${apiUrl}/m2m_tokens/${id}/revoke`, {
    method: 'POST',
    headers: { authorization: `Bearer ${instanceKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ revocation_reason: 'demo' }),
  })
  await res.arrayBuffer()
  if (res.status !== 200)
    throw new DemoError(`The emulator refused to revoke the token (${res.status}).`)
  say(`   ${cyan('←')} ${bold(statusText(res.status))}  revoked`)
}

// — main ----------------------------------------------------------------------------------------

/** Listens on the preferred port, or any free one when it is taken (or with --once). */
async function onFreePort<T>(preferred: number, boot: (port: number) => Promise<T>): Promise<T> {
  if (once) return boot(0)
  try {
    return await boot(preferred)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') return boot(0)
    throw err
  }
}

async function main(): Promise<void> {
  const closers: Array<() => Promise<void>> = []
  let closing = false
  const shutdown = async (code: number): Promise<never> => {
    if (!closing) {
      closing = true
      for (const close of closers.reverse()) await close().catch(() => undefined)
    }
    process.exit(code)
  }
  const stop = (): void => {
    if (closing) return
    say()
    say(dim('Stopping the servers and the emulator…'))
    void shutdown(0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)

  try {
    say(bold('m2m-guard demo: machine-to-machine auth with Clerk M2M tokens, fully offline'))
    say(
      dim(
        'A service (reports-api) accepts calls from other machines. Each caller gets a short-lived',
      ),
    )
    say(
      dim(
        'token from Clerk and sends it as "Authorization: Bearer mt_…"; the service asks Clerk whether',
      ),
    )
    say(
      dim(
        'the token is valid (then caches the answer) and checks that it was issued for this service.',
      ),
    )

    const emulator: Emulator = await onFreePort(4010, (port) => startEmulator({ port }))
    closers.push(() => emulator.close())
    const apiUrl = emulator.apiUrl
    const receiver = await emulator.createMachine({ name: 'reports-api' })
    const caller = await emulator.createMachine({
      name: 'nightly-job',
      scopedMachines: [receiver.id],
      secretKey: CALLER_KEY,
    })
    const outsider: EmulatorMachine = await emulator.createMachine({ name: 'marketing-bot' })

    // The demo keeps verified tokens 1 s (30 s by default) so the revocation step is short.
    const cacheTtlMs = 1000
    const servers: Array<{ name: string; url: string }> = []
    for (const example of EXAMPLES) {
      const mod = (await import(
        pathToFileURL(exampleServerPath(example.name)).href
      )) as ExampleModule
      const server = await onFreePort(example.port, (port) =>
        mod.start({
          port,
          apiUrl: emulator.url,
          // The instance key lets the guard see every token of the instance, so the
          // "not scoped to this machine" decision is m2m-guard's (403), made visible here.
          secretKey: emulator.secretKey,
          machineId: receiver.id,
          cacheTtlMs,
        }),
      )
      closers.push(() => server.close())
      servers.push({ name: example.name, url: server.url })
    }

    say()
    say(bold('Set-up'))
    say(`   Clerk emulator (stands in for api.clerk.com)   ${emulator.url}`)
    say(`   machine ${bold('reports-api')}    ${receiver.id}   the service being called`)
    say(
      `   machine ${bold('nightly-job')}    ${caller.id}   may call reports-api (it is in its scopes)`,
    )
    say(`   machine ${bold('marketing-bot')}  ${outsider.id}   may NOT call reports-api`)
    say('   reports-api, three times, once per framework, each guarded by m2m-guard:')
    for (const s of servers) say(`     ${s.name.padEnd(10)} ${s.url}/internal/report`)

    const report = (s: { url: string }) => `${s.url}/internal/report`
    const callAll = async (token: string | undefined, expected: Expectation) => {
      for (const s of servers) await call(s.name, report(s), token, expected)
    }

    step(
      1,
      'nightly-job asks Clerk for a token',
      'It authenticates with its own machine secret key (ak_…).',
    )
    const first = await mintToken(apiUrl, CALLER_KEY, "nightly-job's machine secret key")

    step(
      2,
      'nightly-job calls reports-api with the token',
      'Each server asks Clerk once (POST /m2m_tokens/verify), checks that reports-api is in the',
      "token's scopes, and hands the caller's identity to the route.",
    )
    await callAll(first.token, { status: 200, caller: caller.id })

    step(
      3,
      'marketing-bot tries with its own token',
      'The token is genuine, but marketing-bot was never given access to reports-api: 403.',
    )
    const foreign = await mintToken(
      apiUrl,
      outsider.secretKey,
      "marketing-bot's machine secret key",
    )
    await callAll(foreign.token, { status: 403, error: 'insufficient_scope' })

    step(
      4,
      'A call without any token',
      'No credentials: 401 with a Bearer challenge saying how to authenticate.',
    )
    await callAll(undefined, { status: 401, error: 'missing_token' })

    step(
      5,
      "nightly-job's token is revoked at Clerk",
      `Servers keep a verified token in memory for up to ${cacheTtlMs / 1000} s here (30 s by default): that is the`,
      'longest a revoked token can still get in. The demo waits that out, then calls again.',
    )
    await revokeToken(apiUrl, emulator.secretKey, first.id)
    await sleep(cacheTtlMs + 100)
    await callAll(first.token, { status: 401, error: 'token_revoked' })

    step(
      6,
      'Clerk goes down',
      'nightly-job gets a fresh token, then the emulator drops every connection. A server that',
      'cannot verify a token refuses it (fail closed) with 503 and Retry-After, never lets it in.',
    )
    const fresh = await mintToken(apiUrl, CALLER_KEY, "nightly-job's machine secret key")
    emulator.setFaults({ down: true })
    await callAll(fresh.token, { status: 503, error: 'verification_unavailable' })

    step(7, 'Clerk is back', 'Failures were never cached, so the same token works at once.')
    emulator.clearFaults()
    await callAll(fresh.token, { status: 200, caller: caller.id })

    say()
    if (surprises === 0) say(green(bold(`All ${answers} answers were as expected.`)))
    else say(red(bold(`${surprises} answer(s) were not what the walk expected (see ✗ above).`)))

    if (once) await shutdown(surprises === 0 ? 0 : 1)

    say()
    say(bold('Still serving. Try it yourself (Ctrl-C to stop):'))
    say(dim('   # a token for nightly-job (the emulator keeps it 1 h)'))
    say(
      `   TOKEN=$(curl -s -X POST ${apiUrl}/m2m_tokens -H 'Authorization: Bearer ${CALLER_KEY}' -H 'Content-Type: application/json' -d '{}' | sed -E 's/.*"token":"([^"]+)".*/\\1/')`,
    )
    for (const s of servers) say(`   curl -i ${report(s)} -H "Authorization: Bearer $TOKEN"`)
    say(dim('   # and without a token'))
    say(`   curl -i ${report(servers[0]!)}`)
  } catch (err) {
    say()
    say(red(`The demo stopped: ${explain(err)}`))
    await shutdown(1)
  }
}

function explain(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code === 'EADDRINUSE')
    return 'a port it needs is taken; stop the other process or run `npm start -- --once`.'
  if (err instanceof DemoError) return err.message
  return err instanceof Error ? err.message : String(err)
}

main().catch((err: unknown) => {
  process.stderr.write(`The demo stopped: ${explain(err)}\n`)
  process.exit(1)
})
