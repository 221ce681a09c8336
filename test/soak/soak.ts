/**
 * `npm run soak` (10 minutes; `-- --minutes N` to change; not part of CI): mixed traffic through
 * Express, Fastify and Hono sharing one revocation bus, with token churn, revocations (through
 * the verifier and at Clerk only), short-lived tokens expiring while cached, unknown and malformed
 * tokens. Every answer is checked against a model of what it must be; caches are checked against
 * their bounds; RSS and heap are sampled (after a forced GC) and their slope reported.
 *
 * Exit code 0 only with zero wrong answers and no cache over its bound.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createM2MClient, memoryRevocationBus } from '@m2m-guard/core'
import { FRAMEWORKS, type GuardedApp, startGuardedApp } from '../fuzz/apps.js'

const { values: args } = parseArgs({ options: { minutes: { type: 'string', default: '10' } } })
const minutes = Number(args.minutes)
if (!(minutes > 0)) throw new TypeError('usage: soak [--minutes N]')

const TTL_MS = 5_000
const MAX_ENTRIES = 300
const NEGATIVE_MAX_ENTRIES = 300
const POOL = 150
const WORKERS = 12
// Clock edges: an answer within this much of an expiry or revocation bound may go either way.
const EDGE_MS = 1_000

interface EmulatorInfo {
  url: string
  secretKey: string
  receiverId: string
  callerId: string
  callerKey: string
}

async function startEmulatorChild(): Promise<{ info: EmulatorInfo; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [
      '--conditions=@m2m-guard/source',
      '--import',
      'tsx',
      fileURLToPath(new URL('./emulator-child.ts', import.meta.url)),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  )
  const info = await new Promise<EmulatorInfo>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', (line) =>
      resolve(JSON.parse(line) as EmulatorInfo),
    )
    child.once('exit', () => reject(new Error('emulator child exited')))
  })
  return { info, child }
}

/** What the model knows about a token, and so what each answer must be. */
interface Tracked {
  token: string
  id: string
  expiresAt: number
  /** When revoke() through the verifier (and bus) resolved: 401 everywhere from then on. */
  busRevokedAt?: number
  /** When it was revoked at Clerk only: caches may still admit it for up to TTL_MS. */
  upstreamRevokedAt?: number
}

type Verdict = 200 | 401 | 'either'

function expected(t: Tracked, start: number, end: number): Verdict {
  if (t.busRevokedAt !== undefined && start > t.busRevokedAt) return 401
  if (start > t.expiresAt + EDGE_MS) return 401
  if (t.upstreamRevokedAt !== undefined && start > t.upstreamRevokedAt + TTL_MS + EDGE_MS)
    return 401
  const revokedSomehow = t.busRevokedAt !== undefined || t.upstreamRevokedAt !== undefined
  if (!revokedSomehow && end < t.expiresAt - EDGE_MS) return 200
  if (t.upstreamRevokedAt !== undefined && end < t.upstreamRevokedAt && end < t.expiresAt - EDGE_MS)
    return 200
  return 'either'
}

const { info, child } = await startEmulatorChild()
const minter = createM2MClient({ apiUrl: info.url, secretKey: info.callerKey })
const admin = createM2MClient({ apiUrl: info.url, secretKey: info.secretKey })
const bus = memoryRevocationBus()
const apps: GuardedApp[] = await Promise.all(
  FRAMEWORKS.map((framework) =>
    startGuardedApp(framework, {
      apiUrl: info.url,
      secretKey: info.secretKey,
      machineId: info.receiverId,
      revocationBus: bus,
      cache: { ttlMs: TTL_MS, maxEntries: MAX_ENTRIES, negativeMaxEntries: NEGATIVE_MAX_ENTRIES },
    }),
  ),
)

async function mint(seconds: number): Promise<Tracked> {
  const created = await minter.createToken({ secondsUntilExpiration: seconds })
  return {
    token: created.token,
    id: created.id,
    expiresAt: created.expiration ?? Number.POSITIVE_INFINITY,
  }
}

// Live tokens (long-lived, or 5–20 s so they expire while cached) and recently revoked ones,
// kept in the model until every bound on them has passed, then dropped: the model is bounded too.
let live: Tracked[] = await Promise.all(Array.from({ length: POOL }, () => mint(3_600)))
let retired: Tracked[] = []

const counts = { requests: 0, ok: 0, rejected: 0, malformed: 0, wrong: 0, either: 0, transport: 0 }
const wrongSamples: string[] = []
let boundViolations = 0

function pick<T>(list: readonly T[]): T {
  return list[Math.floor(Math.random() * list.length)]!
}

async function oneRequest(): Promise<void> {
  const app = pick(apps)
  const dice = Math.random()
  let tracked: Tracked | undefined
  let header: string
  if (dice < 0.75) tracked = pick(live)
  else if (dice < 0.85 && retired.length > 0) tracked = pick(retired)
  if (tracked) header = `Bearer ${tracked.token}`
  else if (dice < 0.95) header = `Bearer mt_${randomBytes(36).toString('base64url')}`
  else header = `Bearer ${randomBytes(8).toString('hex')} x`
  const start = Date.now()
  const res = await app.send([['authorization', header]])
  const end = Date.now()
  counts.requests++
  let want: Verdict
  if (tracked) want = expected(tracked, start, end)
  else if (header.endsWith(' x'))
    want = 401 // placeholder, checked below as 400
  else want = 401
  let good: boolean
  if (!tracked && header.endsWith(' x')) {
    good = res.status === 400
    counts.malformed++
  } else if (want === 'either') {
    good = res.status === 200 || res.status === 401
    counts.either++
  } else good = res.status === want
  if (good && res.status === 200) {
    good = (JSON.parse(res.bodyText) as { subject?: string }).subject === info.callerId
  }
  if (res.status === 200) counts.ok++
  else counts.rejected++
  if (!good) {
    counts.wrong++
    if (wrongSamples.length < 10) {
      const state = tracked
        ? `expires in ${tracked.expiresAt - start} ms, bus-revoked ${tracked.busRevokedAt ? start - tracked.busRevokedAt : '-'} ms ago, upstream-revoked ${tracked.upstreamRevokedAt ? start - tracked.upstreamRevokedAt : '-'} ms ago`
        : 'untracked'
      wrongSamples.push(
        `${app.framework}: wanted ${want}, got ${res.status} ${res.bodyText.slice(0, 120)} (${state})`,
      )
    }
  }
}

/** Every second: retire some tokens (expiry, revocation both ways), mint replacements. */
async function churn(): Promise<void> {
  const now = Date.now()
  // Forget what no bound can still apply to.
  retired = retired.filter(
    (t) => now < Math.max(t.expiresAt, (t.upstreamRevokedAt ?? 0) + TTL_MS) + 30_000,
  )
  const expired = live.filter((t) => t.expiresAt < now)
  live = live.filter((t) => t.expiresAt >= now)
  retired.push(...expired)
  const victims = live.splice(0, 3)
  for (const [i, t] of victims.entries()) {
    if (i === 0) {
      await pick(apps).verifier.revoke(t.id, 'soak')
      t.busRevokedAt = Date.now()
    } else if (i === 1) {
      t.upstreamRevokedAt = Date.now()
      await admin.revokeToken({ m2mTokenId: t.id, revocationReason: 'soak' })
    }
    retired.push(t)
  }
  const replacements = await Promise.all(
    Array.from({ length: POOL - live.length }, (_, i) =>
      mint(i % 2 === 0 ? 3_600 : 5 + Math.floor(Math.random() * 15)),
    ),
  )
  live.push(...replacements)
}

interface Sample {
  atMin: number
  rssMb: number
  heapMb: number
}
const samples: Sample[] = []
const gc = (globalThis as { gc?: () => void }).gc

function sample(startedAt: number): void {
  gc?.()
  const m = process.memoryUsage()
  samples.push({
    atMin: (Date.now() - startedAt) / 60_000,
    rssMb: m.rss / 2 ** 20,
    heapMb: m.heapUsed / 2 ** 20,
  })
  for (const app of apps) {
    const s = app.verifier.stats()
    if (s.entries > MAX_ENTRIES || s.negativeEntries > NEGATIVE_MAX_ENTRIES) {
      boundViolations++
      wrongSamples.push(
        `${app.framework}: cache over bound: ${s.entries}/${MAX_ENTRIES}, ${s.negativeEntries}/${NEGATIVE_MAX_ENTRIES}`,
      )
    }
  }
}

/** Least-squares slope (MB per minute) of `key` over the samples after the first fifth (warm-up). */
function slope(key: 'rssMb' | 'heapMb'): number {
  const points = samples.slice(Math.floor(samples.length / 5))
  const n = points.length
  if (n < 2) return Number.NaN
  const mx = points.reduce((s, p) => s + p.atMin, 0) / n
  const my = points.reduce((s, p) => s + p[key], 0) / n
  const num = points.reduce((s, p) => s + (p.atMin - mx) * (p[key] - my), 0)
  const den = points.reduce((s, p) => s + (p.atMin - mx) ** 2, 0)
  return num / den
}

const startedAt = Date.now()
const endAt = startedAt + minutes * 60_000
console.log(
  `soak: ${minutes} min, ${FRAMEWORKS.join(' + ')}, ${WORKERS} workers, gc ${gc ? 'forced' : 'not exposed'}`,
)
const churner = setInterval(
  () => void churn().catch((err: unknown) => wrongSamples.push(`churn failed: ${String(err)}`)),
  1_000,
)
const sampler = setInterval(
  () => {
    sample(startedAt)
    const last = samples[samples.length - 1]!
    console.log(
      `  ${last.atMin.toFixed(1)} min: ${counts.requests} requests, ${counts.wrong} wrong, rss ${last.rssMb.toFixed(1)} MB, heap ${last.heapMb.toFixed(1)} MB, cache ${apps.map((a) => a.verifier.stats().entries).join('/')}`,
    )
  },
  Math.min(10_000, (minutes * 60_000) / 12),
)
try {
  await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      while (Date.now() < endAt) {
        try {
          await oneRequest()
        } catch (err) {
          // No answer at all (a socket error even after apps.ts's one retry) is not a wrong
          // answer, but it is reported; a run full of them would prove little.
          counts.transport++
          if (wrongSamples.length < 10) wrongSamples.push(`transport error: ${String(err)}`)
        }
      }
    }),
  )
} finally {
  clearInterval(churner)
  clearInterval(sampler)
  sample(startedAt)
  await Promise.all(apps.map((app) => app.close()))
  child.stdin!.end()
}

const first = samples[0]!
const last = samples[samples.length - 1]!
console.log(`
soak finished after ${((Date.now() - startedAt) / 60_000).toFixed(1)} min
  requests        ${counts.requests} (${counts.ok} admitted, ${counts.rejected} rejected, ${counts.malformed} malformed, ${counts.either} at a clock edge)
  wrong answers   ${counts.wrong}
  no answer       ${counts.transport} (socket errors, not verdicts)
  cache bounds    ${boundViolations === 0 ? `held (≤ ${MAX_ENTRIES} valid, ≤ ${NEGATIVE_MAX_ENTRIES} invalid per instance)` : `${boundViolations} violations`}
  RSS             ${first.rssMb.toFixed(1)} → ${last.rssMb.toFixed(1)} MB, slope ${slope('rssMb').toFixed(3)} MB/min (after warm-up)
  heap used       ${first.heapMb.toFixed(1)} → ${last.heapMb.toFixed(1)} MB, slope ${slope('heapMb').toFixed(3)} MB/min (after warm-up)`)
for (const line of wrongSamples) console.log(`  ! ${line}`)
process.exitCode = counts.wrong === 0 && boundViolations === 0 ? 0 : 1
