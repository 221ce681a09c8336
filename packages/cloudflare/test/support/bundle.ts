import { fileURLToPath } from 'node:url'
import { bundleWorker as bundle } from '../../../../test/support/bundle-worker.js'

/**
 * Bundles this package's test Worker (from source, Workers conditions first).
 *
 * @example
 * const script = await bundleWorker('worker.ts')
 */
export function bundleWorker(entry = 'worker.ts'): Promise<string> {
  // node:async_hooks is provided by workerd under the `nodejs_als` compatibility flag.
  return bundle(fileURLToPath(new URL(`./${entry}`, import.meta.url)), {
    external: ['node:async_hooks'],
  })
}
