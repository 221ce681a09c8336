/**
 * `npm run fuzz`: the hostile-input property of hostile.ts for 100 000 cases per framework
 * (Express, Fastify, Hono), each framework in its own process with its own emulator so the two
 * cores are both used and upstream calls are attributed exactly. A fresh seed each run, printed,
 * so any failure can be replayed:
 *
 *   npm run fuzz -- --runs 100000 --seed 123
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { startEmulator } from '@m2m-guard/emulator'
import fc from 'fast-check'
import { FRAMEWORKS, type Framework } from './apps.js'
import { hostileExamples, hostileProperty, startFuzzRig, UpstreamLedger } from './hostile.js'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '100000' },
    seed: { type: 'string' },
    framework: { type: 'string' },
  },
})
const runs = Number(values.runs)
const seed =
  values.seed === undefined ? (Date.now() ^ (Math.random() * 2 ** 31)) | 0 : Number(values.seed)
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed)) {
  throw new TypeError('usage: fuzz [--runs N] [--seed S]')
}

async function fuzzOne(framework: Framework): Promise<void> {
  const emulator = await startEmulator({ port: 0 })
  const rig = await startFuzzRig(emulator, [framework])
  const started = performance.now()
  try {
    const ledger = new UpstreamLedger(emulator, rig)
    // The regression cases first, whatever the seed; then `runs` generated ones.
    await fc.assert(hostileProperty(rig, ledger), {
      numRuns: runs,
      seed,
      examples: hostileExamples(),
    })
    await ledger.assertNoStrayCalls()
    const { byOperation } = emulator.stats()
    const seconds = ((performance.now() - started) / 1000).toFixed(0)
    console.log(
      `${framework}: ${runs} cases passed in ${seconds} s (seed ${seed}); upstream calls: ${JSON.stringify(byOperation)}`,
    )
  } finally {
    await rig.close()
    await emulator.close()
  }
}

if (values.framework !== undefined) {
  await fuzzOne(values.framework as Framework)
} else {
  console.log(`fuzz: ${runs} cases per framework, seed ${seed}`)
  const self = fileURLToPath(import.meta.url)
  const codes = await Promise.all(
    FRAMEWORKS.map(
      (framework) =>
        new Promise<number>((resolve) => {
          const child = spawn(
            process.execPath,
            [
              ...process.execArgv,
              self,
              '--runs',
              String(runs),
              '--seed',
              String(seed),
              '--framework',
              framework,
            ],
            { stdio: 'inherit' },
          )
          child.on('exit', (code) => resolve(code ?? 1))
        }),
    ),
  )
  process.exitCode = codes.every((code) => code === 0) ? 0 : 1
  if (process.exitCode !== 0) console.error('fuzz: FAILED (see the counterexample above)')
}
