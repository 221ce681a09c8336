/**
 * Version of `@m2m-guard/cli`, printed by `m2m-guard --version` (a test keeps it equal to
 * package.json, so the bundle needs no JSON import).
 *
 * @example
 * console.log(VERSION) // '0.1.0'
 */
export const VERSION = '0.1.0'
