export {
  authorizationOfNodeRequest,
  MAX_AUTHORIZATION_LENGTH,
  type NodeRequestLike,
  type ParsedAuthorization,
  parseAuthorization,
  parseBearerToken,
} from './authorization.js'
export { hasM2MEnv, M2M_ENV_VARIABLES, verifierOptionsFromEnv } from './env.js'
export {
  createM2MGuard,
  type M2MCompiledPolicy,
  type M2MGuard,
  type M2MGuardContext,
  type M2MGuardOptions,
  type M2MGuardRequest,
  type M2MGuardResult,
  validateM2MGuardOptions,
} from './guard.js'
export { callObserver } from './observe.js'
export {
  assertValidPolicy,
  checkPolicy,
  type M2MClaimsRequirement,
  type M2MPolicy,
  type M2MRoutePolicy,
} from './policy.js'
export {
  DEFAULT_RETRY_AFTER_SECONDS,
  type RenderAuthErrorOptions,
  type RenderedAuthError,
  renderAuthError,
  toM2MAuthError,
} from './render.js'
