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
    ...options,
  })
}
