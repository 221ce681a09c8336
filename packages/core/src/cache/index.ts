export { sha256 } from './hash.js'
export { type MemoryCacheStoreOptions, memoryCacheStore, memoryRevocationBus } from './memory.js'
