import { existsSync, readdirSync } from 'node:fs'
import { defaultServerConditions } from 'vite'
import { defineConfig } from 'vitest/config'

// Tests run against source: the custom export condition points every workspace package at src/.
const conditions = ['@m2m-guard/source', ...defaultServerConditions]

const dirs = ['packages', 'examples'].flatMap((parent) =>
  existsSync(parent)
    ? readdirSync(parent, { withFileTypes: true })
        .filter((entry) => entry.isDirectory())
        .map((entry) => `${parent}/${entry.name}`)
    : [],
)

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['@m2m-guard/source'] } },
  test: {
    testTimeout: 20_000,
    hookTimeout: 30_000,
    projects: [
      ...dirs.map((dir) => ({
        extends: true as const,
        test: {
          // examples/express and packages/express must not share a project name.
          name: dir.startsWith('examples/')
            ? `example-${dir.split('/').pop()}`
            : (dir.split('/').pop() as string),
          root: dir,
          include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
        },
      })),
      {
        extends: true as const,
        test: { name: 'cross', root: 'test', include: ['**/*.test.ts'] },
      },
    ],
  },
})
