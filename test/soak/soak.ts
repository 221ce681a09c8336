/**
 * `npm run soak` (10 minutes; `-- --minutes N` to change; not part of CI): mixed traffic through
 * Express, Fastify and Hono sharing one revocation bus, with token churn, revocations (through
 * the verifier and at Clerk only), short-lived tokens expiring while cached, unknown and malformed
 * tokens. Every answer is checked against a model of what it must be; caches are checked against
 * their bounds; RSS and heap are sampled (after a forced GC) and their slope reported.
 *
 * Exit code 0 only if all of these hold (each failed one is named at the end, after `FAIL`):
 * - zero wrong answers;
 * - zero transport errors (no answer at all, even after apps.ts's one retry on a reused socket)
 *   and zero failed churn ticks (minting, revoking): the tolerance for both is MAX_TRANSPORT_ERRORS
 *   and MAX_CHURN_FAILURES, zero, since on loopback neither happens in a healthy run, and a run
 *   where requests or churn fail proves little about the answers it did not get;
 * - no cache over its bound at any sample;
 * - at least MIN_ADMITTED_PER_SECOND admitted answers per second of run, so an idle or broken
 *   run cannot pass by answering nothing;
 * - a heap slope (after warm-up) of at most MAX_HEAP_SLOPE_MB_PER_MIN, unless the growth it
 *   implies over the measured span is under MIN_HEAP_GROWTH_MB (short runs: see there).
 * The soak's own model is bounded as well (retired tokens, problem samples), so its growth does
 * not show up as the library's.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createM2MClient, memoryRevocationBus } from '@m2m-guard/core'
import { FRAMEWORKS, type GuardedApp, startGuardedApp } from '../fuzz/apps.js'

const { values: args } = parseArgs({ options: { minutes: { type: 'string', default: '10' } } })
// `--minutes 0.5` works too: a quick check of the soak itself; the memory slope means most over
// the full 10 minutes.
const minutes = Number(args.minutes)
if (!(minutes > 0)) throw new TypeError('usage: soak [--minutes N]')

const TTL_MS = 5_000
const MAX_ENTRIES = 300
const NEGATIVE_MAX_ENTRIES = 300
const POOL = 150
const WORKERS = 12
// Clock edges: an answer within this much of an expiry or revocation bound may go either way.
const EDGE_MS = 1_000
// How long a retired token stays in the model: until RETAIN_SETTLED_MS after its answer can only
// be 401 (so "stays rejected once the caches forget it" is exercised across several TTLs), and at
// most RETAIN_MS after it was retired (a token retired unrevoked is valid for an hour: the model
// forgets it well before). Steady state is a few hundred; MAX_RETIRED is a hard cap on top
// (oldest evicted first), so the model cannot grow in the measured process whatever the timing.
const RETAIN_SETTLED_MS = 30_000
const RETAIN_MS = 60_000
const MAX_RETIRED = 1_000
// The first few problems are kept, as text, for the report; the rest are only counted.
const MAX_PROBLEM_SAMPLES = 20

// Pass criteria (see the header).
const MAX_TRANSPORT_ERRORS = 0
const MAX_CHURN_FAILURES = 0
// Loopback traffic from 12 workers answers 1 000–2 000 requests/s on a small machine, ~75 % of
// them admitted. 50 admitted per second is far below any healthy run, far above a broken one.
const MIN_ADMITTED_PER_SECOND = 50
// Heap used after a forced GC, least-squares slope over the samples after the first fifth
// (warm-up). A real leak grows with traffic: at 1 000–2 000 requests/s, keeping 10 bytes per
// request is 0.6–1.2 MB/min; a planted 200-byte string per request measured 23 MB/min. Flat runs
// measured 0.06 MB/min over 1 minute and 0.24 MB/min over 2 (the caches still filling towards
// their 300 entries, ~1 KB each, which they reach after 3–4 minutes). 0.5 MB/min is the limit:
// twice the worst flat run, under the smallest leak worth finding; over the full 10 minutes (8
// after warm-up) it allows at most ~4 MB of growth.
const MAX_HEAP_SLOPE_MB_PER_MIN = 0.5
// Short runs (`--minutes 0.5`) have few samples, and the caches and the model are still filling
// towards their bounds (a 0.5-minute run at low traffic measured 1.4 MB/min from 0.4 MB of
// growth): the slope fails the run only if it also implies at least this much growth over the
// measured span. Over 10 minutes this never binds first (0.5 MB/min × 8 min is 4 MB).
const MIN_HEAP_GROWTH_MB = 2

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
  /** When it left the live pool (expired, revoked, or just dropped). */
  retiredAt?: number
}

/** From when on every answer for `t` must be 401 (never, for a token neither revoked nor expired). */
function settledAt(t: Tracked): number {
  return Math.min(
    t.busRevokedAt ?? Number.POSITIVE_INFINITY,
    t.expiresAt + EDGE_MS,
    t.upstreamRevokedAt === undefined
      ? Number.POSITIVE_INFINITY
      : t.upstreamRevokedAt + TTL_MS + EDGE_MS,
  )
}

type Verdict = 200 | 400 | 401 | 'either'

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

// Live tokens (long-lived, or 5–20 s so they expire while cached) and recently retired ones,
// kept in the model for a while after their answer settled (see RETAIN_*), then dropped, and
// capped at MAX_RETIRED, oldest first: the model is bounded too.
let live: Tracked[] = await Promise.all(Array.from({ length: POOL }, () => mint(3_600)))
let retired: Tracked[] = []

function retire(tokens: readonly Tracked[], now: number): void {
  for (const t of tokens) t.retiredAt = now
  retired.push(...tokens)
  // In retirement order, so the oldest go first.
  const over = retired.length - MAX_RETIRED
  if (over > 0) {
    retired.splice(0, over)
    counts.retiredEvicted += over
  }
}

const counts = {
  requests: 0,
  ok: 0,
  rejected: 0,
  malformed: 0,
  wrong: 0,
  either: 0,
  transport: 0,
  churnFailures: 0,
  churnSkipped: 0,
  boundViolations: 0,
  retiredEvicted: 0,
}
/** The first MAX_PROBLEM_SAMPLES problems (wrong answers, transport and churn errors, bounds). */
const problemSamples: string[] = []
let problemsNotKept = 0

function noteProblem(text: string): void {
  if (problemSamples.length < MAX_PROBLEM_SAMPLES) problemSamples.push(text)
  else problemsNotKept++
}

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
  else if (header.endsWith(' x')) {
    want = 400
    counts.malformed++
  } else want = 401
  let good: boolean
  if (want === 'either') {
    good = res.status === 200 || res.status === 401
    counts.either++
  } else good = res.status === want
  if (good && res.status === 200) {
    // An admitted answer must name the caller; a body that is not even JSON is a wrong answer too.
    try {
      good = (JSON.parse(res.bodyText) as { subject?: string }).subject === info.callerId
    } catch {
      good = false
    }
  }
  if (res.status === 200) counts.ok++
  else counts.rejected++
  if (!good) {
    counts.wrong++
    const state = tracked
      ? `expires in ${tracked.expiresAt - start} ms, bus-revoked ${tracked.busRevokedAt ? start - tracked.busRevokedAt : '-'} ms ago, upstream-revoked ${tracked.upstreamRevokedAt ? start - tracked.upstreamRevokedAt : '-'} ms ago`
      : 'untracked'
    noteProblem(
      `wrong answer from ${app.framework}: wanted ${want}, got ${res.status} ${res.bodyText.slice(0, 120)} (${state})`,
    )
  }
}

/** Every second: retire some tokens (expiry, revocation both ways), mint replacements. */
async function churn(): Promise<void> {
  const now = Date.now()
  // Forget what has been settled (401 for good) for a while, and anything retired long enough.
  retired = retired.filter(
    (t) => now < Math.min(settledAt(t) + RETAIN_SETTLED_MS, (t.retiredAt ?? now) + RETAIN_MS),
  )
  const expired = live.filter((t) => t.expiresAt < now)
  live = live.filter((t) => t.expiresAt >= now)
  retire(expired, now)
  const victims = live.splice(0, 3)
  for (const [i, t] of victims.entries()) {
    if (i === 0) {
      await pick(apps).verifier.revoke(t.id, 'soak')
      t.busRevokedAt = Date.now()
    } else if (i === 1) {
      t.upstreamRevokedAt = Date.now()
      await admin.revokeToken({ m2mTokenId: t.id, revocationReason: 'soak' })
    }
    retire([t], Date.now())
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
      counts.boundViolations++
      noteProblem(
        `${app.framework}: cache over bound: ${s.entries}/${MAX_ENTRIES}, ${s.negativeEntries}/${NEGATIVE_MAX_ENTRIES}`,
      )
    }
  }
}

/** Minutes covered by the samples after the first fifth (warm-up), which `slope` is fitted to. */
function measuredSpan(): number {
  const points = samples.slice(Math.floor(samples.length / 5))
  return points.length < 2 ? 0 : points[points.length - 1]!.atMin - points[0]!.atMin
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
// One churn at a time: a tick that finds the last one still running is skipped (and counted);
// the last one is awaited before the apps close, so it cannot fail on closed apps.
let churning: Promise<void> | undefined
const churner = setInterval(() => {
  if (churning) {
    counts.churnSkipped++
    return
  }
  churning = churn()
    .catch((err: unknown) => {
      counts.churnFailures++
      noteProblem(`churn failed: ${String(err)}`)
    })
    .finally(() => {
      churning = undefined
    })
}, 1_000)
const sampler = setInterval(
  () => {
    sample(startedAt)
    const last = samples[samples.length - 1]!
    console.log(
      `  ${last.atMin.toFixed(1)} min: ${counts.requests} requests, ${counts.wrong} wrong, ${counts.transport} unanswered, rss ${last.rssMb.toFixed(1)} MB, heap ${last.heapMb.toFixed(1)} MB, cache ${apps.map((a) => a.verifier.stats().entries).join('/')}, model ${live.length} live + ${retired.length} retired`,
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
          // No answer at all (a socket error even after apps.ts's one retry): not a wrong answer,
          // but a run full of them would prove little, so it fails the run too (see the header).
          counts.transport++
          noteProblem(`transport error: ${String(err)}`)
        }
      }
    }),
  )
} finally {
  clearInterval(churner)
  clearInterval(sampler)
  await churning
  sample(startedAt)
  await Promise.all(apps.map((app) => app.close()))
  child.stdin!.end()
}

const seconds = (Date.now() - startedAt) / 1_000
const first = samples[0]!
const last = samples[samples.length - 1]!
const heapSlope = slope('heapMb')
const rssSlope = slope('rssMb')
const span = measuredSpan()
const minAdmitted = Math.floor(MIN_ADMITTED_PER_SECOND * seconds)
console.log(`
soak finished after ${(seconds / 60).toFixed(1)} min
  requests        ${counts.requests} (${counts.ok} admitted, ${counts.rejected} rejected, ${counts.malformed} malformed, ${counts.either} at a clock edge), ${(counts.requests / seconds).toFixed(0)}/s
  wrong answers   ${counts.wrong}
  no answer       ${counts.transport} (socket errors, not verdicts)
  churn           ${counts.churnFailures} failed, ${counts.churnSkipped} ticks skipped (previous still running)
  cache bounds    ${counts.boundViolations === 0 ? `held (≤ ${MAX_ENTRIES} valid, ≤ ${NEGATIVE_MAX_ENTRIES} invalid per instance)` : `${counts.boundViolations} violations`}
  model           ${live.length} live + ${retired.length} retired tokens at the end (cap ${MAX_RETIRED}, ${counts.retiredEvicted} evicted)
  RSS             ${first.rssMb.toFixed(1)} → ${last.rssMb.toFixed(1)} MB, slope ${rssSlope.toFixed(3)} MB/min (after warm-up; reported, not judged)
  heap used       ${first.heapMb.toFixed(1)} → ${last.heapMb.toFixed(1)} MB, slope ${heapSlope.toFixed(3)} MB/min over ${span.toFixed(1)} min after warm-up (limit ${MAX_HEAP_SLOPE_MB_PER_MIN} MB/min, if it implies ≥ ${MIN_HEAP_GROWTH_MB} MB)`)
for (const line of problemSamples) console.log(`  ! ${line}`)
if (problemsNotKept > 0) console.log(`  ! … and ${problemsNotKept} more`)

// RSS is reported but not judged: it includes memory the allocator keeps after a GC and returns
// to the OS on its own schedule, so its slope is noise over short runs. The heap after a forced GC
// is what a leak would grow.
const failures: string[] = []
if (counts.wrong > 0) failures.push(`${counts.wrong} wrong answers`)
if (counts.transport > MAX_TRANSPORT_ERRORS)
  failures.push(`${counts.transport} requests got no answer (allowed ${MAX_TRANSPORT_ERRORS})`)
if (counts.churnFailures > MAX_CHURN_FAILURES)
  failures.push(`${counts.churnFailures} churn ticks failed (allowed ${MAX_CHURN_FAILURES})`)
if (counts.boundViolations > 0)
  failures.push(`${counts.boundViolations} samples with a cache over its bound`)
if (counts.ok < minAdmitted)
  failures.push(
    `only ${counts.ok} requests admitted, at least ${minAdmitted} required (${MIN_ADMITTED_PER_SECOND}/s)`,
  )
if (!gc) failures.push('gc not exposed (run with --expose-gc, as `npm run soak` does)')
if (Number.isNaN(heapSlope)) failures.push('too few memory samples for a heap slope')
else if (heapSlope > MAX_HEAP_SLOPE_MB_PER_MIN && heapSlope * span >= MIN_HEAP_GROWTH_MB)
  failures.push(
    `heap slope ${heapSlope.toFixed(3)} MB/min above ${MAX_HEAP_SLOPE_MB_PER_MIN} MB/min (${(heapSlope * span).toFixed(1)} MB over ${span.toFixed(1)} min)`,
  )
if (failures.length === 0) console.log('\nPASS')
else console.log(`\nFAIL: ${failures.join('; ')}`)
process.exitCode = failures.length === 0 ? 0 : 1
