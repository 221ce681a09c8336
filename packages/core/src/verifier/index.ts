export { decodeCachedAuth } from '../cache/decode.js'
export {
  type MemoryCacheStoreOptions,
  memoryCacheStore,
  memoryRevocationBus,
} from '../cache/index.js'
export { MAX_TOKEN_LENGTH, tokenShape } from './shape.js'
export { createM2MVerifier } from './verifier.js'
