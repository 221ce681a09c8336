/**
 * The routes every target mounts, with the same guard options, so one table of cases can run
 * unchanged against each framework. This module is framework-free and also runs inside workerd
 * (bundled into the test worker), which is why it takes plain values rather than an emulator.
 */
import {
  createM2MVerifier,
  type M2MClaims,
  type M2MGuardOptions,
  type M2MVerifier,
} from '@m2m-guard/core'

/** Where the routes' verifiers find the emulator, and the machines the policies name. */
export interface BehaviourEnv {
  /** The emulator's API origin. */
  apiUrl: string
  /** The instance key (`sk_…`): it may verify any token, so scope checks are ours (403). */
  instanceKey: string
  /** The service behind these routes (`mch_…`): tokens must list it in `scopes`. */
  receiverId: string
  /** The only subject `/m2m/subjects` lets in. */
  callerId: string
}

/** The guard options common to the three adapters (no framework-specific `getToken`/`onError`). */
export type GuardRouteOptions = Omit<M2MGuardOptions, 'getToken' | 'onError'>

/** Names of the guarded routes; each is mounted at `/m2m/<name>`. */
export type RouteName =
  | 'protected'
  | 'subjects'
  | 'claims'
  | 'claims-fn'
  | 'optional'
  | 'realm'
  | 'misconfigured'
  | 'upstream'
  | 'revocable'

/** One guarded route. */
export interface GuardedRoute {
  name: RouteName
  path: string
  options: GuardRouteOptions
}

/** What a target mounts: the guarded routes, and the verifier behind `POST /admin/revoke/:id`. */
export interface BehaviourRoutes {
  routes: GuardedRoute[]
  /** Shared by `/m2m/revocable` and the admin route, as a service that revokes would share it. */
  revocable: M2MVerifier
  close(): Promise<void>
}

/** The realm of `/m2m/realm`: quotes and a backslash, which the challenge must escape. */
export const ODD_REALM = 'reports "v2" \\ internal'

/** `/m2m/claims-fn` admits tokens whose `tier` claim is `gold`. */
export function isGoldTier(claims: M2MClaims | null): boolean {
  return claims?.['tier'] === 'gold'
}

/**
 * Builds the routes for one app. Each route gets its own verifier (its own cache and breaker),
 * built here once, never per request.
 *
 * @param env - Where the emulator is and which machines the policies name.
 * @param [options.credentialsFromEnv=false] - Leave the key and URL of the main routes to the runtime's environment.
 * @example
 * const { routes, revocable } = defineRoutes(env)
 */
export function defineRoutes(
  env: BehaviourEnv,
  { credentialsFromEnv = false }: { credentialsFromEnv?: boolean } = {},
): BehaviourRoutes {
  const explicit = { apiUrl: env.apiUrl, secretKey: env.instanceKey, machineId: env.receiverId }
  // On Workers the adapter reads CLERK_SECRET_KEY / CLERK_API_URL from c.env: the table's main
  // routes leave them out there, so that path is what the workerd target exercises.
  const base = credentialsFromEnv ? { machineId: env.receiverId } : explicit
  const revocable = createM2MVerifier(explicit)
  const options: Record<RouteName, GuardRouteOptions> = {
    protected: base,
    subjects: { ...base, allowedSubjects: [env.callerId] },
    claims: { ...base, requireClaims: { role: 'reporter' } },
    'claims-fn': { ...base, requireClaims: isGoldTier },
    optional: { ...base, optional: true },
    realm: { ...base, realm: ODD_REALM },
    // A key the emulator does not know: Clerk answers 401 to us, which is our fault, not the caller's.
    misconfigured: { ...explicit, secretKey: 'sk_test_not_a_key_this_instance_knows' },
    // Short deadline and one quick retry, so outage cases are fast and their call counts exact.
    upstream: {
      ...explicit,
      timeoutMs: 400,
      retry: { maxRetries: 1, initialDelayMs: 1, maxDelayMs: 5 },
    },
    revocable: { verifier: revocable },
  }
  const routes = (Object.keys(options) as RouteName[]).map((name) => ({
    name,
    path: `/m2m/${name}`,
    options: options[name],
  }))
  return { routes, revocable, close: () => revocable.close() }
}

/** The body every guarded route answers with on success. */
export interface GuardedBody {
  m2m: unknown
}

/**
 * Headers of the CORS answer each app's own `OPTIONS` handler gives, beside the body of the `GET`
 * handler. They mark that the handler ran: a preflight without a token must come back without them.
 */
export const OPTIONS_HANDLER_HEADERS: Readonly<Record<string, string>> = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET',
  'access-control-allow-headers': 'authorization',
}
