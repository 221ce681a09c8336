#!/usr/bin/env node
// Launcher of the `m2m-guard` command. Runs the built CLI (dist/cli.js) when it exists, which is
// always the case for an installed package and in the repo after `npm install` (its prepare step
// builds every package). Without a build, or with M2M_GUARD_FROM_SOURCE=1 (tests do this so
// they never run a stale build), it runs src/cli.ts through tsx, a devDependency of the repo.
import { existsSync } from 'node:fs'
import { register } from 'node:module'

const dist = new URL('../dist/cli.js', import.meta.url)

if (process.env.M2M_GUARD_FROM_SOURCE !== '1' && existsSync(dist)) {
  await import(dist.href)
} else {
  const { register: registerTsx } = await import('tsx/esm/api')
  registerTsx()
  // Registered after tsx so it runs first: it adds the workspace's source condition, so that
  // @m2m-guard/core and @m2m-guard/emulator resolve to their src/ as well, built or not.
  register('./source-condition.mjs', import.meta.url)
  await import(new URL('../src/cli.ts', import.meta.url).href)
}
