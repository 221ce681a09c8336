/**
 * Revoke on one, rejected on all: `npm start` in examples/fleet.
 *
 * Starts a local redis-server (or uses REDIS_URL), the Clerk emulator, and three instances of the
 * service in three processes (src/instance.ts). A caller's token is accepted by all three, with
 * one upstream verification between them; the admin revokes it through instance 1; 100 ms later
 * every instance answers 401 token_revoked.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createServer } from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { createM2MClient } from '@m2m-guard/core'
import { startEmulator } from '@m2m-guard/emulator'

/** One request of the walk. */
export interface Step {
  instance: string
  action: 'GET /internal/report' | 'POST /internal/revoke'
  status: number
  /** `error` of a rejected request's body. */
  error?: string | undefined
  /** Upstream verify calls so far, counted by the emulator. */
  upstreamVerifyCalls: number
}

export interface DemoOptions {
  /** @defaultValue 3 */
  instances?: number
  /** Use this Redis instead of starting a redis-server. @defaultValue process.env.REDIS_URL */
  redisUrl?: string | undefined
  /** @defaultValue console.log */
  log?: (line: string) => void
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no free port')
  return address.port
}

/** A throwaway redis-server: no persistence, loopback only. */
async function startRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    throw new Error('redis-server not found: apt-get install redis-server, or set REDIS_URL')
  }
  const port = await freePort()
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  )
  await new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NonNullable<typeof child.stdout> })
    lines.on('line', (line) => {
      if (line.includes('Ready to accept connections')) {
        lines.close()
        resolve()
      }
    })
    child.once('exit', () => reject(new Error('redis-server exited at start')))
  })
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    },
  }
}

/** Starts src/instance.ts in its own process; resolves with its URL once it listens. */
async function spawnInstance(
  env: Record<string, string>,
  onEvent: (event: { instance?: string; type?: string; source?: string }) => void,
): Promise<{ url: string; process: ChildProcess }> {
  const script = fileURLToPath(new URL('./instance.ts', import.meta.url))
  const child = spawn(
    process.execPath,
    ['--conditions=@m2m-guard/source', '--import', 'tsx', script],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NonNullable<typeof child.stdout> })
    lines.on('line', (line) => {
      let parsed: { listening?: string; instance?: string; type?: string; source?: string }
      try {
        parsed = JSON.parse(line) as typeof parsed
      } catch {
        return // not one of the instance's JSON lines
      }
      if (parsed.listening) resolve(parsed.listening)
      else onEvent(parsed)
    })
    child.once('exit', (code) => reject(new Error(`instance exited with ${code}`)))
  })
  return { url, process: child }
}

/**
 * Runs the walk and returns every step. Everything it starts, it stops.
 *
 * @example
 * const steps = await runDemo({ log: () => {} })
 * steps.filter((s) => s.status === 401).length // 3
 */
export async function runDemo(options: DemoOptions = {}): Promise<Step[]> {
  const log = options.log ?? console.log
  const count = options.instances ?? 3
  const redisUrl = options.redisUrl ?? process.env['REDIS_URL']
  const redis = redisUrl ? { url: redisUrl, stop: async () => {} } : await startRedis()
  const emulator = await startEmulator({ port: 0 })
  const children: ChildProcess[] = []
  const steps: Step[] = []
  try {
    const service = await emulator.createMachine({ name: 'reports-api' })
    const caller = await emulator.createMachine({ name: 'cron', scopedMachines: [service.id] })
    const admin = await emulator.createMachine({ name: 'ops', scopedMachines: [service.id] })

    const instances: Array<{ name: string; url: string }> = []
    for (let i = 1; i <= count; i++) {
      const name = `instance-${i}`
      const started = await spawnInstance(
        {
          INSTANCE: name,
          PORT: '0',
          REDIS_URL: redis.url,
          CLERK_API_URL: emulator.url,
          // The instance key: revoking another machine's token needs it (a machine key may only
          // revoke its own tokens).
          CLERK_SECRET_KEY: emulator.secretKey,
          MACHINE_ID: service.id,
          ADMIN_MACHINE_ID: admin.id,
        },
        (event) => {
          // Where each instance got its answer: Clerk (upstream) or the shared Redis tier (store).
          if (event.type === 'verified')
            log(`    ${event.instance} verified the token from ${event.source}`)
        },
      )
      children.push(started.process)
      instances.push({ name, url: started.url })
    }
    log(`fleet: ${count} instances sharing ${redis.url}; Clerk emulator at ${emulator.url}`)

    const { token, id } = await createM2MClient({
      apiUrl: emulator.url,
      secretKey: caller.secretKey,
    }).createToken({ secondsUntilExpiration: 600 })
    const adminToken = (
      await createM2MClient({ apiUrl: emulator.url, secretKey: admin.secretKey }).createToken({
        secondsUntilExpiration: 600,
      })
    ).token

    const call = async (
      instance: { name: string; url: string },
      action: Step['action'],
    ): Promise<Step> => {
      const revoke = action === 'POST /internal/revoke'
      const res = await fetch(
        `${instance.url}${revoke ? `/internal/revoke/${id}` : '/internal/report'}`,
        {
          method: revoke ? 'POST' : 'GET',
          headers: { authorization: `Bearer ${revoke ? adminToken : token}` },
        },
      )
      const body = (await res.json()) as { error?: string }
      const step: Step = {
        instance: instance.name,
        action,
        status: res.status,
        error: body.error,
        upstreamVerifyCalls: emulator.stats().byOperation['verifyM2MToken'] ?? 0,
      }
      steps.push(step)
      log(
        `${step.action.padEnd(22)} ${step.instance}  → ${step.status}${step.error ? ` ${step.error}` : ''}` +
          `   (upstream verify calls so far: ${step.upstreamVerifyCalls})`,
      )
      return step
    }

    for (const instance of instances) await call(instance, 'GET /internal/report')
    const [first] = instances
    if (first) await call(first, 'POST /internal/revoke')
    await sleep(100)
    for (const instance of instances) await call(instance, 'GET /internal/report')
    return steps
  } finally {
    await Promise.all(
      children.map(
        (child) =>
          new Promise((resolve) => {
            if (child.exitCode !== null) return resolve(undefined)
            child.once('exit', resolve)
            child.kill('SIGTERM')
          }),
      ),
    )
    await emulator.close()
    await redis.stop()
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runDemo()
    .then((steps) => {
      const after = steps.slice(steps.findIndex((s) => s.action === 'POST /internal/revoke') + 1)
      const rejected = after.filter((s) => s.error === 'token_revoked').length
      console.log(`\nrevoked through one instance, rejected by ${rejected} of ${after.length}`)
      if (rejected !== after.length) process.exitCode = 1
    })
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : String(err))
      process.exitCode = 1
    })
}
