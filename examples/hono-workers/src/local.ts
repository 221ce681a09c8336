/**
 * Runs the Worker locally in workerd, through Miniflare 3 (which runs on Node 20; wrangler 4 needs
 * Node 22), with the settings of wrangler.toml. `npm start` serves it on port 8787; `start()` is
 * what the demo and the smoke test call.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { build } from 'esbuild'
import { Miniflare } from 'miniflare'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** What wrangler.toml says, as far as the local runner needs it. */
export interface WranglerConfig {
  name: string
  main: string
  compatibilityDate: string
  vars: Record<string, string>
}

/**
 * Reads the flat subset of TOML wrangler.toml uses here: `key = "string"` lines, top level and
 * under `[vars]`. Anything richer belongs to wrangler itself.
 *
 * @example
 * readWranglerConfig().vars['MACHINE_ID']
 */
export function readWranglerConfig(path = `${ROOT}wrangler.toml`): WranglerConfig {
  const top: Record<string, string> = {}
  const vars: Record<string, string> = {}
  let section = ''
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const header = /^\[([^\]]+)\]$/.exec(line)
    if (header) {
      section = header[1] ?? ''
      continue
    }
    const pair = /^([A-Za-z0-9_]+)\s*=\s*"([^"]*)"$/.exec(line)
    if (!pair) continue
    const [, key = '', value = ''] = pair
    if (section === '') top[key] = value
    else if (section === 'vars') vars[key] = value
  }
  return {
    name: top['name'] ?? 'worker',
    main: top['main'] ?? 'src/worker.ts',
    compatibilityDate: top['compatibility_date'] ?? '2024-09-23',
    vars,
  }
}

/** Where to listen and what to override in wrangler.toml's vars. */
export interface StartOptions {
  /** 0 picks a free port. @defaultValue 8787 */
  port?: number
  /** @defaultValue '127.0.0.1' */
  host?: string
  /** Overrides CLERK_API_URL. */
  apiUrl?: string | undefined
  /** Bound as CLERK_MACHINE_SECRET_KEY (`ak_…`) or CLERK_SECRET_KEY (`sk_…`). */
  secretKey?: string | undefined
  /** Overrides MACHINE_ID. */
  machineId?: string | undefined
}

/** A running local Worker. */
export interface RunningWorker {
  url: string
  close(): Promise<void>
}

/**
 * Bundles the Worker the way wrangler does (ESM, worker export conditions) and serves it.
 *
 * @example
 * const worker = await start({ port: 0, apiUrl: emulator.url, secretKey, machineId })
 * await worker.close()
 */
export async function start(options: StartOptions = {}): Promise<RunningWorker> {
  const config = readWranglerConfig()
  const bundle = await build({
    entryPoints: [`${ROOT}${config.main}`],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    // `@m2m-guard/source` makes the monorepo's packages resolve to their TypeScript sources.
    conditions: ['workerd', 'worker', 'browser', '@m2m-guard/source'],
    mainFields: ['module', 'main'],
    write: false,
    logLevel: 'silent',
  })
  const script = bundle.outputFiles[0]?.text
  if (script === undefined) throw new Error('esbuild produced no Worker bundle')

  const bindings: Record<string, string> = { ...config.vars }
  if (options.apiUrl !== undefined) bindings['CLERK_API_URL'] = options.apiUrl
  if (options.machineId !== undefined) bindings['MACHINE_ID'] = options.machineId
  if (options.secretKey !== undefined) {
    bindings[
      options.secretKey.startsWith('sk_') ? 'CLERK_SECRET_KEY' : 'CLERK_MACHINE_SECRET_KEY'
    ] = options.secretKey
  }
  const mf = new Miniflare({
    name: config.name,
    modules: true,
    script,
    compatibilityDate: config.compatibilityDate,
    bindings,
    port: options.port ?? 8787,
    host: options.host ?? '127.0.0.1',
  })
  const url = await mf.ready
  return { url: url.origin, close: () => mf.dispose() }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const secretKey = process.env['CLERK_MACHINE_SECRET_KEY'] ?? process.env['CLERK_SECRET_KEY']
  start({
    port: Number(process.env['PORT'] ?? 8787),
    apiUrl: process.env['CLERK_API_URL'],
    secretKey,
    machineId: process.env['MACHINE_ID'],
  })
    .then((worker) => console.log(`hono-workers example (workerd) listening on ${worker.url}`))
    .catch((err: unknown) => {
      console.error(`Could not start: ${err instanceof Error ? err.message : String(err)}`)
      process.exitCode = 1
    })
}
