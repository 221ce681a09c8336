/**
 * Plumbing shared by the benchmarks: child processes (emulator, server under test), load
 * generation (autocannon for throughput, an undici pool where per-request latencies are needed),
 * the emulator's admin API, and statistics.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createM2MClient } from '@m2m-guard/core'
import autocannon from 'autocannon'
import { Pool } from 'undici'
import { stopViaStdin } from '../../test/support/child.js'
import type { ServerConfig } from './server-process.js'

const here = fileURLToPath(new URL('.', import.meta.url))

/** Where the emulator child listens, and the machines it created. */
export interface EmulatorInfo {
  url: string
  secretKey: string
  receiverId: string
  callerKey: string
  jwtPublicKey: string
}

/** A child that printed one JSON line and serves until its stdin closes. */
export interface Child<T> {
  info: T
  stop(): Promise<void>
}

async function spawnChild<T>(file: string, args: string[] = []): Promise<Child<T>> {
  const child: ChildProcess = spawn(
    process.execPath,
    // The packages as built (bench/lib/build.ts), as users run them; tsx only for this file.
    ['--import', 'tsx', `${here}${file}`, ...args],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
      // Clerk's SDK sends telemetry to Clerk by default: a benchmark must not phone home.
      env: { ...process.env, CLERK_TELEMETRY_DISABLED: '1' },
    },
  )
  // Bounded: a child that does not close within 5 s is killed, and the bench still ends.
  const stop = () => stopViaStdin(child)
  try {
    const info = await new Promise<T>((resolve, reject) => {
      let ready = false
      createInterface({ input: child.stdout! }).on('line', (line) => {
        // Libraries may print notices first; the child's own line is the first JSON object.
        if (ready || !line.startsWith('{')) {
          process.stderr.write(`[${file}] ${line}\n`)
          return
        }
        ready = true
        try {
          resolve(JSON.parse(line) as T)
        } catch (err) {
          reject(err)
        }
      })
      child.once('exit', () => reject(new Error(`${file} exited before it was ready`)))
    })
    return { info, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

export const startEmulatorProcess = (): Promise<Child<EmulatorInfo>> =>
  spawnChild<EmulatorInfo>('emulator-process.ts')

// Any syntactically valid publishable key: the frontend API it encodes is never contacted for
// M2M tokens, but Clerk's middleware refuses to start without one.
const PUBLISHABLE_KEY = `pk_test_${Buffer.from('bench.clerk.accounts.dev$').toString('base64')}`

/** Starts the server under test for `framework` against the emulator; resolves to its origin. */
export async function startServerProcess(
  framework: ServerConfig['framework'],
  emulator: EmulatorInfo,
): Promise<Child<{ port: number }> & { base: string }> {
  const config: ServerConfig = {
    framework,
    apiUrl: emulator.url,
    secretKey: emulator.secretKey,
    receiverId: emulator.receiverId,
    jwtPublicKey: emulator.jwtPublicKey,
    publishableKey: PUBLISHABLE_KEY,
  }
  const child = await spawnChild<{ port: number }>('server-process.ts', [JSON.stringify(config)])
  return { ...child, base: `http://127.0.0.1:${child.info.port}` }
}

/** Mints a token as the caller machine, through the public API (the emulator is another process). */
export async function mintToken(
  emulator: EmulatorInfo,
  tokenFormat: 'opaque' | 'jwt' = 'opaque',
): Promise<string> {
  const client = createM2MClient({ apiUrl: emulator.url, secretKey: emulator.callerKey })
  const created = await client.createToken({ secondsUntilExpiration: 3_600, tokenFormat })
  return created.token
}

async function admin(
  emulator: EmulatorInfo,
  path: string,
  init: RequestInit = {},
): Promise<unknown> {
  const res = await fetch(`${emulator.url}/__emulator/${path}`, {
    ...init,
    headers: { authorization: `Bearer ${emulator.secretKey}`, 'content-type': 'application/json' },
  })
  if (!res.ok) throw new Error(`emulator admin ${path}: ${res.status}`)
  return res.json()
}

/** `POST /m2m_tokens/verify` calls the emulator has answered so far. */
export async function verifyCalls(emulator: EmulatorInfo): Promise<number> {
  const stats = (await admin(emulator, 'stats')) as { byOperation: Record<string, number> }
  return stats.byOperation['verifyM2MToken'] ?? 0
}

export async function setLatency(emulator: EmulatorInfo, latencyMs: number | null): Promise<void> {
  await admin(emulator, 'faults', {
    method: 'POST',
    body: JSON.stringify({ latencyMs, operations: latencyMs === null ? null : ['verifyM2MToken'] }),
  })
}

export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url)
  return (await res.json()) as T
}

/** Server CPU (user + system) in µs, read from the server process itself. */
export async function serverCpuMicros(base: string): Promise<number> {
  const { user, system } = await getJson<{ user: number; system: number }>(`${base}/__cpu`)
  return user + system
}

/** Throughput of one autocannon run; `valid` is false if any answer was not a 2xx. */
export interface LoadResult {
  rps: number
  p50: number
  p99: number
  total: number
  valid: boolean
}

/**
 * One autocannon run against `url`.
 *
 * @example
 * await load({ url: `${base}/bare`, seconds: 3 })
 */
export async function load(options: {
  url: string
  token?: string
  seconds?: number
  amount?: number
  connections?: number
}): Promise<LoadResult> {
  const started = performance.now()
  const result = await autocannon({
    url: options.url,
    connections: options.connections ?? 32,
    ...(options.amount === undefined
      ? { duration: options.seconds ?? 3 }
      : { amount: options.amount }),
    headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
    timeout: 10,
  })
  // autocannon's own `duration` is too coarse for short fixed-count runs: time it here.
  const seconds = (performance.now() - started) / 1000
  return {
    rps: result.requests.total / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    total: result.requests.total,
    valid: result.non2xx === 0 && result.errors === 0 && result.timeouts === 0,
  }
}

/** A keep-alive pool for benches that time each request themselves. */
export function pool(base: string, connections: number): Pool {
  return new Pool(base, { connections, pipelining: 1, keepAliveTimeout: 30_000 })
}

/** Sends one GET through `pool`; resolves to the status and the latency in ms. */
export async function timedGet(
  p: Pool,
  path: string,
  token: string | undefined,
): Promise<{ status: number; ms: number }> {
  const started = performance.now()
  const res = await p.request({
    method: 'GET',
    path,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  })
  await res.body.dump()
  return { status: res.statusCode, ms: performance.now() - started }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN
}
