export * from './errors.js'
export type * from './types.js'
export type * from './verifier/types.js'
