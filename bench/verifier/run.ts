import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { cpus } from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import {
  createM2MClient,
  createM2MVerifier,
  type M2MClient,
  type M2MVerifier,
} from '@m2m-guard/core'
import { Pool } from 'undici'

const quick = process.argv.includes('--quick')
/** `--hits`: only the cache-hit figures (seconds, not minutes, while tuning the hit path). */
const hitsOnly = process.argv.includes('--hits')
/** `--miss`: only the miss-path figures (while tuning the client). */
const missOnly = process.argv.includes('--miss')
const here = fileURLToPath(new URL('.', import.meta.url))

interface EmulatorInfo {
  url: string
  secretKey: string
  callerKey: string
  serviceId: string
}

async function startEmulatorProcess(): Promise<{ info: EmulatorInfo; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [...process.execArgv.filter((a) => a !== '--expose-gc'), `${here}emulator-child.ts`],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  )
  const lines = createInterface({ input: child.stdout! })
  const [line] = (await once(lines, 'line')) as [string]
  return { info: JSON.parse(line) as EmulatorInfo, child }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
}

function fmt(n: number, digits = 1): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

async function admin(info: EmulatorInfo, path: string, init: RequestInit = {}): Promise<unknown> {
  const res = await fetch(`${info.url}/__emulator/${path}`, {
    ...init,
    headers: { authorization: `Bearer ${info.secretKey}`, 'content-type': 'application/json' },
  })
  return res.json()
}

const sha256 = (process.getBuiltinModule('node:crypto') as typeof import('node:crypto')).hash

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN
}

/** Runs `block` (10 000 operations) until `durationMs` passes; operations per second. */
async function rate(durationMs: number, block: (ops: number) => unknown): Promise<number> {
  let ops = 0
  const start = performance.now()
  let now = start
  while (now - start < durationMs) {
    await block(ops)
    ops += 10_000
    now = performance.now()
  }
  return ops / ((now - start) / 1000)
}

interface HitFigures {
  /** verify() hits per second, median of the rounds. */
  hit: number
  /** crypto.hash of the same tokens alone, per second, median of the rounds. */
  hash: number
  /** Median over rounds of hit ÷ hash measured back to back: what load does not change. */
  ratio: number
}

/**
 * Cache-hit verify() throughput on one thread, in rounds alternating with the SHA-256 every hit
 * must compute (`crypto.hash` of the same tokens, alone: the ceiling any hit path can reach).
 * Back-to-back rounds see the same load, so their ratio is meaningful on a shared machine even
 * when the absolute rates are not.
 */
async function hitThroughput(
  verifier: M2MVerifier,
  tokens: string[],
  mode: 'sequential' | 'batched' = 'sequential',
): Promise<HitFigures> {
  for (const t of tokens) await verifier.verify(t)
  const pending: Promise<unknown>[] = new Array(1_000)
  const n = tokens.length
  const durationMs = quick ? 250 : 500
  const hits: number[] = []
  const hashes: number[] = []
  const ratios: number[] = []
  let sink = ''
  for (let round = 0; round < (quick ? 5 : 11); round++) {
    const hashRate = await rate(durationMs, (ops) => {
      // 'binary' is Node's typed name for latin1: the 32-byte digest the in-process key is.
      for (let i = 0; i < 10_000; i++) sink = sha256('sha256', tokens[(ops + i) % n]!, 'binary')
    })
    const hitRate = await rate(durationMs, async (ops) => {
      if (mode === 'sequential') {
        for (let i = 0; i < 10_000; i++) await verifier.verify(tokens[(ops + i) % n]!)
      } else {
        // 1 000 callers in flight at once, as on a busy server: one await per batch, not per call.
        for (let b = 0; b < 10; b++) {
          for (let i = 0; i < 1_000; i++)
            pending[i] = verifier.verify(tokens[(ops + b * 1_000 + i) % n]!)
          await Promise.all(pending)
        }
      }
    })
    hits.push(hitRate)
    hashes.push(hashRate)
    ratios.push(hitRate / hashRate)
  }
  if (sink.length !== 32) throw new Error('unexpected hash')
  return { hit: median(hits), hash: median(hashes), ratio: median(ratios) }
}

/** Median latency of raw undici verify requests vs verifier misses (ttlMs 0), interleaved. */
async function missCost(
  info: EmulatorInfo,
  token: string,
): Promise<{
  raw: number[]
  client: number[]
  verifier: number[]
  /** Median of the per-triple differences to the raw request, µs. */
  added: { client: number; verifier: number }
}> {
  const pool = new Pool(info.url, { keepAliveTimeout: 10_000 })
  const body = JSON.stringify({ token })
  const headers = { authorization: `Bearer ${info.secretKey}`, 'content-type': 'application/json' }
  const raw = async () => {
    const res = await pool.request({ method: 'POST', path: '/v1/m2m_tokens/verify', headers, body })
    const json = (await res.body.json()) as { id: string }
    if (res.statusCode !== 200 || !json.id)
      throw new Error(`raw request answered ${res.statusCode}`)
  }
  const verifier = createM2MVerifier({
    secretKey: info.secretKey,
    apiUrl: info.url,
    cache: { ttlMs: 0 },
  })
  const viaVerifier = async () => {
    await verifier.verify(token)
  }
  const client = createM2MClient({ secretKey: info.secretKey, apiUrl: info.url })
  const viaClient = async () => {
    await client.verifyToken({ token })
  }
  // One request of each kind after another, in an order that rotates: each triple sees the same
  // machine, so the per-triple differences (medians below) are not moved by load drifting between
  // blocks of one kind, which on this VM was larger than the figure itself.
  const triples = quick ? 600 : 5_000
  const samples = { raw: [] as number[], client: [] as number[], verifier: [] as number[] }
  const kinds = [
    ['raw', raw],
    ['client', viaClient],
    ['verifier', viaVerifier],
  ] as const
  for (let i = 0; i < 200; i++) for (const [, fn] of kinds) await fn()
  for (let i = 0; i < triples; i++) {
    for (let k = 0; k < kinds.length; k++) {
      const [name, fn] = kinds[(i + k) % kinds.length]!
      const start = performance.now()
      await fn()
      samples[name].push((performance.now() - start) * 1000)
    }
  }
  await pool.close()
  const paired = (xs: number[]) => median(xs.map((x, i) => x - samples.raw[i]!))
  const added = { client: paired(samples.client), verifier: paired(samples.verifier) }
  samples.raw.sort((a, b) => a - b)
  samples.client.sort((a, b) => a - b)
  samples.verifier.sort((a, b) => a - b)
  return { ...samples, added }
}

/**
 * The verifier's own miss-path cost, without I/O: a client whose verifyToken answers at once
 * with a decoded token, so what is measured is shape check, hash, both LRUs, coalescing map,
 * breaker, bulkhead lease, body checks and sealing. Compared with calling that client directly.
 */
async function missOverheadNoIo(): Promise<{ direct: number; verifier: number }> {
  const created = Date.now()
  const answer = {
    object: 'machine_to_machine_token' as const,
    id: `mt_${'0'.repeat(32)}`,
    subject: 'mch_bench00000000000000000000000',
    claims: null,
    scopes: ['mch_bench00000000000000000000001'],
    revoked: false,
    revocationReason: null,
    expired: false,
    expiration: created + 3_600_000,
    lastUsedAt: null,
    createdAt: created,
    updatedAt: created,
  }
  const real = createM2MClient({ secretKey: 'sk_test_bench', apiUrl: 'http://127.0.0.1:9' })
  const client: M2MClient = Object.create(real, {
    verifyToken: { value: async () => ({ ...answer, scopes: [...answer.scopes] }) },
  })
  const verifier = createM2MVerifier({ client, cache: { ttlMs: 0 } })
  const token = `mt_${'b'.repeat(48)}`
  const n = quick ? 20_000 : 200_000
  let direct = Number.POSITIVE_INFINITY
  let viaVerifier = Number.POSITIVE_INFINITY
  for (let round = 0; round < 3; round++) {
    let start = performance.now()
    for (let i = 0; i < n; i++) await client.verifyToken({ token })
    direct = Math.min(direct, ((performance.now() - start) * 1000) / n)
    start = performance.now()
    for (let i = 0; i < n; i++) await verifier.verify(token)
    viaVerifier = Math.min(viaVerifier, ((performance.now() - start) * 1000) / n)
  }
  return { direct, verifier: viaVerifier }
}

/** Heap per cached entry: 100 000 valid tokens verified through the real upstream path. */
async function heapPerEntry(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run through index.ts (needs --expose-gc)')
  const entries = quick ? 20_000 : 100_000
  const subjects = Array.from({ length: 20 }, (_, i) => `mch_bench${String(i).padStart(23, '0')}`)
  const created = Date.now()
  // An in-process upstream that answers like Clerk (fresh JSON per answer, so strings are not
  // shared between entries any more than they would be in production): 100 000 real HTTP
  // round trips would measure the emulator, not the cache.
  let n = 0
  const fetchLike = async (): Promise<Response> => {
    const i = n++
    const hex = i.toString(16).padStart(32, '0')
    return new Response(
      JSON.stringify({
        object: 'machine_to_machine_token',
        id: `mt_${hex}`,
        subject: subjects[i % subjects.length],
        claims: null,
        scopes: [subjects[(i + 1) % subjects.length]],
        revoked: false,
        revocation_reason: null,
        expired: false,
        expiration: created + 3_600_000,
        last_used_at: null,
        created_at: created,
        updated_at: created,
      }),
      { status: 200, headers: { 'content-type': 'application/json' } },
    )
  }
  gc()
  gc()
  const before = process.memoryUsage().heapUsed
  const verifier = createM2MVerifier({
    secretKey: 'sk_test_bench',
    apiUrl: 'http://127.0.0.1:9',
    fetch: fetchLike,
    cache: { ttlMs: 3_600_000, maxEntries: entries },
    maxConcurrentUpstream: 256,
  })
  const batch = 256
  for (let i = 0; i < entries; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, entries - i) }, (_, j) =>
        verifier.verify(`mt_${(i + j).toString(36).padStart(48, '_')}`),
      ),
    )
  }
  gc()
  gc()
  const after = process.memoryUsage().heapUsed
  if (verifier.stats().entries !== entries)
    throw new Error(`expected ${entries} entries, got ${verifier.stats().entries}`)
  const perEntry = (after - before) / entries
  // Keep the verifier alive until measured.
  if (verifier.stats().entries === 0) console.log('unreachable')
  return perEntry
}

/** 1 000 concurrent callers of one token nobody has verified yet. */
async function thundering(
  info: EmulatorInfo,
  token: string,
): Promise<{ upstream: number; latencies: number[] }> {
  const verifier = createM2MVerifier({ secretKey: info.secretKey, apiUrl: info.url })
  await admin(info, 'stats/reset', { method: 'POST', body: '{}' })
  const start = performance.now()
  const latencies = await Promise.all(
    Array.from({ length: 1_000 }, () =>
      verifier.verify(token).then(() => performance.now() - start),
    ),
  )
  const stats = (await admin(info, 'stats')) as { byOperation: Record<string, number> }
  latencies.sort((a, b) => a - b)
  return { upstream: stats.byOperation['verifyM2MToken'] ?? 0, latencies }
}

const { info, child } = await startEmulatorProcess()
try {
  const client = createM2MClient({ secretKey: info.callerKey, apiUrl: info.url })
  const mint = async () => (await client.createToken({ secondsUntilExpiration: 3600 })).token

  console.log(`# m2m-guard verifier benchmarks${quick ? ' (quick)' : ''}`)
  console.log(
    `node ${process.version}, ${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}, ${process.platform}/${process.arch}`,
  )
  console.log('')

  const single = [await mint()]
  const many: string[] = []
  while (!missOnly && many.length < 1_000)
    many.push(...(await Promise.all(Array.from({ length: 25 }, () => mint()))))
  const hitVerifier = createM2MVerifier({
    secretKey: info.secretKey,
    apiUrl: info.url,
    cache: { ttlMs: 3_600_000 },
  })
  if (!missOnly) {
    const hitOne = await hitThroughput(hitVerifier, single)
    const hitMany = await hitThroughput(hitVerifier, many)
    const hitBatched = await hitThroughput(hitVerifier, many, 'batched')
    const hitLine = (name: string, f: HitFigures, note = '') =>
      console.log(
        `cache-hit verify(), ${name} ${fmt(f.hit, 0)} /s, crypto.hash alone ${fmt(f.hash, 0)} /s, ratio ${fmt(f.ratio, 2)}${note}`,
      )
    hitLine('one token:     ', hitOne, '  (target ≥ 1 000 000 /s)')
    hitLine('1 000 tokens:  ', hitMany)
    hitLine('1 000 in flight:', hitBatched, '  (one await per 1 000 calls)')
    console.log(
      `  (medians of ${quick ? 5 : 11} rounds alternating hits with hashing alone; hashing is the floor of a hit)`,
    )
  }

  if (!hitsOnly) {
    const miss = await missCost(info, single[0]!)
    const rawP50 = percentile(miss.raw, 50)
    const cliP50 = percentile(miss.client, 50)
    const verP50 = percentile(miss.verifier, 50)
    // Trimmed mean (10–90 %): the shared machine's scheduling spikes swamp a plain mean.
    const trimmed = (xs: number[]) => {
      const cut = xs.slice(Math.floor(xs.length * 0.1), Math.ceil(xs.length * 0.9))
      return cut.reduce((a, b) => a + b, 0) / cut.length
    }
    const line = (name: string, xs: number[], p50: number) =>
      console.log(`miss path, ${name} p50 ${fmt(p50)} µs, trimmed mean ${fmt(trimmed(xs))} µs`)
    line('raw undici request:     ', miss.raw, rawP50)
    line('client.verifyToken:     ', miss.client, cliP50)
    line('verifier (ttlMs 0):     ', miss.verifier, verP50)
    console.log(
      `miss path, added cost over raw:     ${fmt(miss.added.verifier)} µs median of paired differences (target ≤ 50; the client alone adds ${fmt(miss.added.client)} µs); difference of p50s ${fmt(verP50 - rawP50)} µs`,
    )

    const noIo = await missOverheadNoIo()
    console.log(
      `miss path, verifier's own cost:     ${fmt(noIo.verifier - noIo.direct, 2)} µs per miss (no I/O: ${fmt(noIo.verifier, 2)} µs via verifier vs ${fmt(noIo.direct, 2)} µs calling the client stub)`,
    )
  }
  if (!hitsOnly && !missOnly) {
    const heap = await heapPerEntry()
    console.log(
      `heap per cached entry (${quick ? '20 000' : '100 000'}):    ${fmt(heap, 0)} B  (target ≤ 600)`,
    )

    await admin(info, 'faults', {
      method: 'POST',
      body: JSON.stringify({ latencyMs: 50, operations: ['verifyM2MToken'] }),
    })
    const herd = await thundering(info, await mint())
    await admin(info, 'faults', { method: 'DELETE' })
    console.log(
      `1 000 concurrent callers, new token: ${herd.upstream} upstream call(s) (must be 1), p50 ${fmt(percentile(herd.latencies, 50))} ms, p99 ${fmt(percentile(herd.latencies, 99))} ms (upstream latency fault 50 ms)`,
    )
    if (herd.upstream !== 1) process.exitCode = 1
  }
} finally {
  child.stdin?.end()
  await once(child, 'exit')
}
