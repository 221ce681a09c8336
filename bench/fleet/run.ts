import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import {
  type CacheStore,
  createM2MClient,
  createM2MVerifier,
  type M2MVerifier,
} from '@m2m-guard/core'
import { startEmulator } from '@m2m-guard/emulator'
import { redisCacheStore, redisRevocationBus } from '@m2m-guard/redis'
import { Redis } from 'ioredis'
import {
  redisServerBinary,
  startRedisServer,
} from '../../packages/redis/test/support/redis-server.js'

const INSTANCES = 4
const TOKENS = 100
const REQUESTS = 10_000
const CONCURRENCY = [1, 32]

if (redisServerBinary === undefined) {
  console.error('bench/fleet needs redis-server on PATH (apt-get install redis-server)')
  process.exit(1)
}

/** Seeded, so both tiers see the same request sequence. */
function mulberry32(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const redis = await startRedisServer()
const raw = new Redis(redis.url)
const emulator = await startEmulator({ port: 0 })
const api = await emulator.createMachine({ name: 'api' })
const caller = await emulator.createMachine({ name: 'caller', scopedMachines: [api.id] })
const callerClient = createM2MClient({ apiUrl: emulator.apiUrl, secretKey: caller.secretKey })
const tokens: string[] = []
for (let i = 0; i < TOKENS; i++) {
  tokens.push((await callerClient.createToken({ secondsUntilExpiration: 3_600 })).token)
}

interface Row {
  tier: string
  concurrency: number
  upstream: number
  storeHits: number
  memoryHits: number
  failures: number
}

async function run(shared: boolean, concurrency: number): Promise<Row> {
  await raw.flushall()
  emulator.resetStats()
  const closers: Array<() => Promise<void>> = []
  let storeHits = 0
  let memoryHits = 0
  const verifiers: M2MVerifier[] = []
  for (let i = 0; i < INSTANCES; i++) {
    let store: CacheStore | undefined
    let bus: ReturnType<typeof redisRevocationBus> | undefined
    if (shared) {
      bus = redisRevocationBus({ url: redis.url })
      const s = redisCacheStore({ url: redis.url, revocationBus: bus })
      store = s
      await bus.ready()
      const b = bus
      closers.push(async () => {
        await Promise.all([s.close(), b.close()])
      })
    }
    const verifier = createM2MVerifier({
      apiUrl: emulator.apiUrl,
      secretKey: emulator.secretKey,
      machineId: api.id,
      cache: store ? { ttlMs: 30_000, store } : { ttlMs: 30_000 },
      ...(bus ? { revocationBus: bus } : {}),
      onEvent: (e) => {
        if (e.type === 'cache_hit') {
          if (e.tier === 'store') storeHits++
          else memoryHits++
        }
      },
    })
    verifiers.push(verifier)
    closers.push(() => verifier.close())
  }
  const random = mulberry32(42)
  const plan = Array.from({ length: REQUESTS }, () => ({
    instance: Math.floor(random() * INSTANCES),
    token: Math.floor(random() * TOKENS),
  }))
  let failures = 0
  let next = 0
  const worker = async () => {
    while (next < plan.length) {
      const step = plan[next++]
      if (!step) break
      try {
        await verifiers[step.instance]?.verify(tokens[step.token] ?? '')
      } catch {
        failures++
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  for (const close of closers) await close()
  return {
    tier: shared ? 'in-process LRU + Redis tier' : 'in-process LRU only',
    concurrency,
    upstream: emulator.stats().byOperation['verifyM2MToken'] ?? 0,
    storeHits,
    memoryHits,
    failures,
  }
}

const rows: Row[] = []
for (const concurrency of CONCURRENCY) {
  for (const shared of [false, true]) rows.push(await run(shared, concurrency))
}
raw.disconnect()
await emulator.close()
await redis.stop()

const redisVersion =
  /v=(\S+)/.exec(spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? '?'
const table = [
  '| tiers | requests in flight | upstream verify calls | store hits | memory hits | failed |',
  '| --- | ---: | ---: | ---: | ---: | ---: |',
  ...rows.map(
    (r) =>
      `| ${r.tier} | ${r.concurrency} | ${r.upstream} | ${r.storeHits} | ${r.memoryHits} | ${r.failures} |`,
  ),
].join('\n')
console.log(table)

const section = `## Fleet

\`npx tsx bench/fleet/index.ts\` — ${REQUESTS.toLocaleString('en')} requests spread at random
(seeded) over ${INSTANCES} verifier instances and ${TOKENS} valid tokens, against the emulator and a
local redis-server ${redisVersion}; cache \`ttlMs\` 30 s, so nothing expires during a run. Upstream calls are
counted by the emulator. Node ${process.version}, ${availableParallelism()} cores, ${new Date().toISOString().slice(0, 10)}.

${table}

Without the shared tier every instance verifies every token once (up to
${INSTANCES} × ${TOKENS} = ${INSTANCES * TOKENS} calls); with it, one instance's verification serves the others, so
the count approaches ${TOKENS}. With requests in flight at once, two instances can miss the same
token before either has written it to Redis; each then goes upstream, which is the gap above ${TOKENS}.
Upstream calls are what the figure is about; timing is left out on purpose (one shared machine).
`

// Other benchmarks append their own sections: replace only ours (or append it).
const file = fileURLToPath(new URL('../BENCHMARKS.md', import.meta.url))
let current = ''
try {
  current = readFileSync(file, 'utf8')
} catch {
  current = '# Benchmarks\n'
}
const start = current.search(/^## Fleet\s*$/m)
if (start >= 0) {
  const rest = current.slice(start + 1)
  const end = rest.search(/^## /m)
  current = current.slice(0, start) + section + (end >= 0 ? `\n${rest.slice(end)}` : '')
} else {
  current = `${current.trimEnd()}\n\n${section}`
}
writeFileSync(file, current)
console.log(`Fleet section written to ${file}`)
