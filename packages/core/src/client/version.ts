/**
 * This package's version, sent in the User-Agent (a test keeps it equal to package.json).
 *
 * @example
 * VERSION // '0.1.0'
 */
export const VERSION = '0.1.0'

/**
 * The User-Agent of every request.
 *
 * @example
 * USER_AGENT // 'm2m-guard/0.1.0'
 */
export const USER_AGENT: string = `m2m-guard/${VERSION}`
