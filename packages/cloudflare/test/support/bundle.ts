import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

/**
 * Bundles the test Worker the way wrangler would: Workers conditions first, and the
 * `@m2m-guard/source` condition so this package and the core are taken from source.
 */
export async function bundleWorker(entry = 'worker.ts'): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL(`./${entry}`, import.meta.url))],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser', '@m2m-guard/source'],
    mainFields: ['module', 'main'],
    // Provided by workerd under the `nodejs_als` compatibility flag.
    external: ['node:async_hooks'],
    write: false,
    logLevel: 'silent',
  })
  return result.outputFiles[0]!.text
}
