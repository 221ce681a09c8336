export {
  createJwtVerifier,
  type JwtVerification,
  type JwtVerifierConfig,
  M2M_JWT_CATEGORY,
} from './verify-jwt.js'
