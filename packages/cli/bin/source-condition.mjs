// Module resolve hook (node:module register) used by m2m-guard.mjs when running from source:
// resolves every import with the "@m2m-guard/source" export condition, which the workspace
// packages map to their src/ entry.
/**
 * @param {string} specifier
 * @param {{ conditions: string[] }} context
 * @param {(specifier: string, context: object) => Promise<unknown>} nextResolve
 */
export async function resolve(specifier, context, nextResolve) {
  const conditions = context.conditions.includes('@m2m-guard/source')
    ? context.conditions
    : ['@m2m-guard/source', ...context.conditions]
  return nextResolve(specifier, { ...context, conditions })
}
