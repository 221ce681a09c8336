import type { M2MVerifierOptions } from '../verifier/types.js'

/**
 * The environment variables m2m-guard reads, as in Clerk's SDKs.
 *
 * @example
 * M2M_ENV_VARIABLES.includes('CLERK_SECRET_KEY') // true
 */
export const M2M_ENV_VARIABLES = [
  'CLERK_MACHINE_SECRET_KEY',
  'CLERK_SECRET_KEY',
  'CLERK_API_URL',
  'CLERK_JWT_KEY',
] as const

function text(env: Readonly<Record<string, unknown>>, name: string): string | undefined {
  const value = env[name]
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined
}

/**
 * Verifier options from an environment object, for runtimes whose variables are not in
 * `process.env` (Cloudflare Workers bindings, `c.env`). `CLERK_MACHINE_SECRET_KEY` wins over
 * `CLERK_SECRET_KEY`. Explicit options should be spread over the result: they always win.
 *
 * @param env - Bindings, e.g. `c.env`.
 * @returns `{ secretKey?, apiUrl?, jwt? }` with only what the environment sets.
 * @example
 * createM2MGuard({ ...verifierOptionsFromEnv(c.env), machineId: 'mch_reports' })
 */
export function verifierOptionsFromEnv(
  env: Readonly<Record<string, unknown>>,
): Pick<M2MVerifierOptions, 'secretKey' | 'apiUrl' | 'jwt'> {
  const options: Pick<M2MVerifierOptions, 'secretKey' | 'apiUrl' | 'jwt'> = {}
  const secretKey = text(env, 'CLERK_MACHINE_SECRET_KEY') ?? text(env, 'CLERK_SECRET_KEY')
  if (secretKey !== undefined) options.secretKey = secretKey
  const apiUrl = text(env, 'CLERK_API_URL')
  if (apiUrl !== undefined) options.apiUrl = apiUrl
  const jwtKey = text(env, 'CLERK_JWT_KEY')
  if (jwtKey !== undefined) options.jwt = { jwtKey }
  return options
}

/**
 * Whether an environment object sets any of `M2M_ENV_VARIABLES`.
 *
 * @example
 * hasM2MEnv({ CLERK_SECRET_KEY: 'sk_test_…' }) // true
 */
export function hasM2MEnv(env: unknown): env is Readonly<Record<string, unknown>> {
  if (typeof env !== 'object' || env === null) return false
  const record = env as Record<string, unknown>
  return M2M_ENV_VARIABLES.some((name) => text(record, name) !== undefined)
}
