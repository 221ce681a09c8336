/**
 * Bundles a test Worker the way wrangler would, for Miniflare: Workers conditions first, then
 * `@m2m-guard/source`, so the packages run from source inside workerd like everywhere else.
 */
import { build } from 'esbuild'

/**
 * Returns the bundled ES module text of `entryPath`.
 *
 * @example
 * const script = await bundleWorker(fileURLToPath(new URL('./worker.ts', import.meta.url)))
 * const mf = new Miniflare({ modules: true, script, compatibilityDate: '2024-09-23' })
 */
export async function bundleWorker(
  entryPath: string,
  { external = [] }: { external?: string[] } = {},
): Promise<string> {
  const result = await build({
    entryPoints: [entryPath],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser', '@m2m-guard/source'],
    mainFields: ['module', 'main'],
    external,
    write: false,
    logLevel: 'silent',
  })
  const out = result.outputFiles[0]
  if (!out) throw new Error(`esbuild produced no output for ${entryPath}`)
  return out.text
}
