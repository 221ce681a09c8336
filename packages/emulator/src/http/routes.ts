/** Path → operationId. Every route is served under `/v1` and unversioned. */

export type OperationId =
  | 'createM2MToken'
  | 'getM2MTokens'
  | 'revokeM2MToken'
  | 'verifyM2MToken'
  | 'ListMachines'
  | 'CreateMachine'
  | 'GetMachine'
  | 'UpdateMachine'
  | 'DeleteMachine'
  | 'GetMachineSecretKey'
  | 'RotateMachineSecretKey'
  | 'CreateMachineScope'
  | 'DeleteMachineScope'
  | 'getJwks'

interface Route {
  pattern: RegExp
  methods: Partial<Record<string, OperationId>>
}

// Segments are matched loosely ([^/]+) so a malformed id reaches its handler and gets a 400
// naming the parameter, rather than a 404 for the whole route.
const ROUTES: Route[] = [
  { pattern: /^\/m2m_tokens$/, methods: { POST: 'createM2MToken', GET: 'getM2MTokens' } },
  { pattern: /^\/m2m_tokens\/verify$/, methods: { POST: 'verifyM2MToken' } },
  { pattern: /^\/m2m_tokens\/([^/]+)\/revoke$/, methods: { POST: 'revokeM2MToken' } },
  { pattern: /^\/machines$/, methods: { GET: 'ListMachines', POST: 'CreateMachine' } },
  {
    pattern: /^\/machines\/([^/]+)$/,
    methods: { GET: 'GetMachine', PATCH: 'UpdateMachine', DELETE: 'DeleteMachine' },
  },
  { pattern: /^\/machines\/([^/]+)\/secret_key$/, methods: { GET: 'GetMachineSecretKey' } },
  {
    pattern: /^\/machines\/([^/]+)\/secret_key\/rotate$/,
    methods: { POST: 'RotateMachineSecretKey' },
  },
  { pattern: /^\/machines\/([^/]+)\/scopes$/, methods: { POST: 'CreateMachineScope' } },
  { pattern: /^\/machines\/([^/]+)\/scopes\/([^/]+)$/, methods: { DELETE: 'DeleteMachineScope' } },
  { pattern: /^\/jwks$/, methods: { GET: 'getJwks' } },
]

export type RouteMatch =
  | { kind: 'operation'; operationId: OperationId; params: string[] }
  | { kind: 'method_not_allowed'; allow: string[] }
  | { kind: 'not_found' }

/** `params` are the raw (still percent-encoded) path segments. */
export function matchRoute(method: string, pathname: string): RouteMatch {
  const path = pathname.startsWith('/v1/') ? pathname.slice(3) : pathname
  for (const route of ROUTES) {
    const m = route.pattern.exec(path)
    if (!m) continue
    const operationId = route.methods[method]
    if (!operationId) return { kind: 'method_not_allowed', allow: Object.keys(route.methods) }
    return { kind: 'operation', operationId, params: m.slice(1) }
  }
  return { kind: 'not_found' }
}
