/**
 * Benchmarks measure the packages as users install them: the built `dist/` (tsup output), not
 * the TypeScript sources through tsx, whose transform adds work per call (e.g. `__name` on every
 * closure created per request, about 3 µs per verifier miss). This builds what is stale first;
 * turbo's cache makes it a no-op when nothing changed.
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))

/**
 * Builds every workspace package (cached by turbo), printing only errors.
 *
 * @example
 * ensureBuilt()
 */
export function ensureBuilt(): void {
  execFileSync(
    process.execPath,
    [`${root}node_modules/turbo/bin/turbo`, 'run', 'build', '--output-logs=errors-only'],
    { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] },
  )
}
