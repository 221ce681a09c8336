import { defineConfig, type Options } from 'tsup'

/**
 * Shared build settings: every package ships ESM + CJS + declarations for both.
 * A package's tsup.config.ts names only its entries (and externals it resolves at runtime).
 */
export function packageConfig(options: Options): ReturnType<typeof defineConfig> {
  return defineConfig({
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    sourcemap: true,
    target: 'node20',
    platform: 'neutral',
    splitting: false,
    treeshake: true,
    // The maps point at src/, which every package ships: embedding the sources again in each
    // map (ESM and CJS) would triple the install size for nothing.
    esbuildOptions(esbuild) {
      esbuild.sourcesContent = false
    },
    ...options,
  })
}
