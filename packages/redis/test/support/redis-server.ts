import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { connect, createServer, type Server, type Socket } from 'node:net'

/**
 * A real redis-server per suite, on a free port, without persistence. Outside CI a machine
 * without the binary skips the Redis suites with a message; in CI (CI=true) a missing binary is
 * a failure, since .ci/run installs it.
 */
export const redisServerBinary: string | undefined = (() => {
  // REDIS_SERVER_BIN points at another build (or, set to a missing path, checks the skip path).
  const binary = process.env['REDIS_SERVER_BIN'] || 'redis-server'
  const probe = spawnSync(binary, ['--version'], { encoding: 'utf8' })
  return probe.status === 0 ? binary : undefined
})()

export const inCi = process.env['CI'] === 'true'
export const skipRedis = redisServerBinary === undefined && !inCi

if (skipRedis) {
  console.warn(
    '[@m2m-guard/redis] redis-server not found: Redis suites skipped. Install it with ' +
      '`apt-get install redis-server` (CI installs it through scripts/ensure-system-deps.sh).',
  )
}

/** Fails the suite in CI when the binary is missing, instead of skipping silently. */
export function assertRedisInCi(): void {
  if (redisServerBinary === undefined && inCi) {
    throw new Error(
      'redis-server is missing in CI: scripts/ensure-system-deps.sh should install it',
    )
  }
}

export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

const children = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

async function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')))
  })
}

export interface RedisServer {
  readonly port: number
  readonly url: string
  /** SIGKILL: the outage a crash causes (no goodbye to clients). */
  kill(): Promise<void>
  /** Starts again on the same port (empty: no persistence). */
  start(): Promise<void>
  stop(): Promise<void>
}

export async function startRedisServer(): Promise<RedisServer> {
  assertRedisInCi()
  const port = await freePort()
  let child: ChildProcess | undefined

  const start = async (): Promise<void> => {
    const proc = spawn(
      redisServerBinary ?? 'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    )
    children.add(proc)
    proc.once('exit', () => children.delete(proc))
    child = proc
    for (let i = 0; i < 100; i++) {
      if (await ping(port)) return
      if (proc.exitCode !== null) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    throw new Error(`redis-server did not start on port ${port}`)
  }

  const kill = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child
    child = undefined
    if (!proc || proc.exitCode !== null) return
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    proc.kill(signal)
    await exited
  }

  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    start,
    kill: () => kill('SIGKILL'),
    stop: () => kill('SIGTERM'),
  }
}

/**
 * A TCP proxy in front of Redis that a test can cut, to disconnect one instance while the others
 * stay connected.
 */
export interface CuttableProxy {
  readonly url: string
  /** Drops every connection and refuses new ones until `restore()`. */
  cut(): void
  restore(): void
  close(): Promise<void>
}

export async function startProxy(
  targetPort: number,
  options: {
    /**
     * Holds Redis's answers on a connection for this long after the first SUBSCRIBE the proxy
     * forwards: a reply slower than the command timeout while the connection stays up.
     */
    holdAfterFirstSubscribeMs?: number
  } = {},
): Promise<CuttableProxy> {
  const sockets = new Set<Socket>()
  let refusing = false
  let held = false
  const server: Server = createServer((client) => {
    if (refusing) {
      client.destroy()
      return
    }
    const upstream = connect(targetPort, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.once('close', () => sockets.delete(s))
      s.on('error', () => {})
    }
    const holdMs = options.holdAfterFirstSubscribeMs
    if (holdMs === undefined) {
      client.pipe(upstream)
      upstream.pipe(client)
    } else {
      let holdUntil = 0
      client.on('data', (data: Buffer) => {
        if (!held && /subscribe/i.test(data.toString())) {
          held = true
          holdUntil = Date.now() + holdMs
        }
        upstream.write(data)
      })
      upstream.on('data', (data: Buffer) => {
        const wait = holdUntil - Date.now()
        if (wait > 0) setTimeout(() => client.write(data), wait)
        else client.write(data)
      })
    }
    client.once('close', () => upstream.destroy())
    upstream.once('close', () => client.destroy())
  })
  const port = await freePort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return {
    url: `redis://127.0.0.1:${port}`,
    cut() {
      refusing = true
      for (const s of sockets) s.destroy()
    },
    restore() {
      refusing = false
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Polls until `check` passes or `timeoutMs` ends (then rethrows its last failure). */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await check()
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }
}

/** A three-master Redis Cluster on free ports (no replicas), for the key-layout and bus checks. */
export interface RedisClusterServer {
  readonly ports: number[]
  stop(): Promise<void>
}

/**
 * The processes of one multi-server deployment (a cluster, a Sentinel setup): a temporary
 * directory, ports that are free and distinct, and one stop for all of them.
 */
async function processGroup(name: string): Promise<{
  dir: string
  port(): Promise<number>
  launch(args: string[]): void
  stop(): Promise<void>
}> {
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = mkdtempSync(join(tmpdir(), `m2m-guard-${name}-`))
  const taken = new Set<number>()
  const procs: ChildProcess[] = []
  return {
    dir,
    async port() {
      // Two quick freePort() calls may be handed the same port: keep them distinct.
      for (;;) {
        const port = await freePort()
        if (!taken.has(port)) {
          taken.add(port)
          return port
        }
      }
    },
    launch(args) {
      const proc = spawn(redisServerBinary ?? 'redis-server', args, { stdio: 'ignore' })
      children.add(proc)
      proc.once('exit', () => children.delete(proc))
      procs.push(proc)
    },
    async stop() {
      await Promise.all(
        procs.map(
          (proc) =>
            new Promise<void>((resolve) => {
              if (proc.exitCode !== null) return resolve()
              proc.once('exit', () => resolve())
              proc.kill('SIGTERM')
            }),
        ),
      )
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export async function startRedisCluster(): Promise<RedisClusterServer> {
  assertRedisInCi()
  const { join } = await import('node:path')
  const group = await processGroup('cluster')
  const { dir, stop } = group
  const ports: number[] = []
  for (let i = 0; i < 3; i++) {
    const port = await group.port()
    const busPort = await group.port()
    ports.push(port)
    group.launch([
      '--port',
      String(port),
      '--cluster-port',
      String(busPort),
      '--bind',
      '127.0.0.1',
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      join(dir, `nodes-${port}.conf`),
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
    ])
  }
  try {
    for (const port of ports) {
      for (let i = 0; !(await ping(port)); i++) {
        if (i > 100) throw new Error(`cluster node ${port} did not start`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    const created = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { encoding: 'utf8' },
    )
    if (created.status !== 0)
      throw new Error(`redis-cli --cluster create failed: ${created.stderr}`)
    for (const port of ports) {
      for (let i = 0; ; i++) {
        const info = spawnSync('redis-cli', ['-p', String(port), 'cluster', 'info'], {
          encoding: 'utf8',
        })
        if (info.stdout.includes('cluster_state:ok')) break
        if (i > 200) throw new Error('cluster did not reach cluster_state:ok')
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
  } catch (err) {
    await stop()
    throw err
  }
  return { ports, stop }
}

/** Whether redis-cli is there to form a cluster (it ships with the redis-server package). */
export const haveRedisCli = spawnSync('redis-cli', ['--version']).status === 0

/** A master, one replica and one Sentinel watching them, each a real redis-server process. */
export interface RedisSentinelServer {
  /** The name Sentinel knows the master by (`name` in ioredis's Sentinel options). */
  readonly name: string
  readonly sentinelPort: number
  /** The port of the current master, as Sentinel reports it. */
  masterPort(): number
  /**
   * `SENTINEL FAILOVER`: promotes the replica, then waits until Sentinel reports it as master.
   * Resolves to the new master's port.
   */
  failover(): Promise<number>
  stop(): Promise<void>
}

function redisCli(port: number, ...args: string[]): string {
  const result = spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`redis-cli ${args[0]} failed: ${result.stderr}`)
  return result.stdout
}

export async function startRedisSentinel(): Promise<RedisSentinelServer> {
  assertRedisInCi()
  const { writeFileSync } = await import('node:fs')
  const { join } = await import('node:path')
  const group = await processGroup('sentinel')
  const { dir, launch, stop } = group
  const name = 'm2m-guard-primary'
  const primaryPort = await group.port()
  const replicaPort = await group.port()
  const sentinelPort = await group.port()
  const waitFor = (what: string, ok: () => boolean, timeoutMs = 15_000): Promise<void> =>
    eventually(() => {
      let done = false
      try {
        done = ok()
      } catch {
        // not up yet
      }
      if (!done) throw new Error(`Sentinel setup: ${what}`)
    }, timeoutMs)
  const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
  const masterPort = (): number =>
    Number(redisCli(sentinelPort, 'sentinel', 'get-master-addr-by-name', name).split('\n')[1])
  try {
    launch(['--port', String(primaryPort), ...common])
    launch([
      '--port',
      String(replicaPort),
      ...common,
      '--replicaof',
      '127.0.0.1',
      String(primaryPort),
    ])
    await waitFor('the replica did not sync', () =>
      redisCli(replicaPort, 'info', 'replication').includes('master_link_status:up'),
    )
    // Sentinel rewrites its config file, so it needs one of its own.
    const config = join(dir, 'sentinel.conf')
    writeFileSync(
      config,
      [
        `port ${sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${name} 127.0.0.1 ${primaryPort} 1`,
        `sentinel down-after-milliseconds ${name} 1000`,
        `sentinel failover-timeout ${name} 5000`,
        '',
      ].join('\n'),
    )
    launch([config, '--sentinel'])
    await waitFor('Sentinel did not find the replica', () =>
      /flags\n(slave)\n/.test(redisCli(sentinelPort, 'sentinel', 'replicas', name)),
    )
  } catch (err) {
    await stop()
    throw err
  }
  return {
    name,
    sentinelPort,
    masterPort,
    async failover() {
      const before = masterPort()
      // NOGOODSLAVE until Sentinel has a fresh INFO from the replica: retry briefly.
      await waitFor('SENTINEL FAILOVER was refused', () =>
        redisCli(sentinelPort, 'sentinel', 'failover', name).startsWith('OK'),
      )
      await waitFor('the failover did not complete', () => masterPort() !== before)
      return masterPort()
    },
    stop,
  }
}
