#!/usr/bin/env node
// The registry this project is developed against serves only some platforms' prebuilt binaries
// (e.g. linux-x64 builds of @biomejs/cli-*, @esbuild/*, @rollup/*), so npm writes a lockfile that
// lacks the other platforms' optional packages, and `npm ci` then refuses it as "out of sync".
// This adds the missing optional entries with their os/cpu/libc, which every npm skips on a
// non-matching platform, so the lockfile works everywhere. Run after `npm install`:
//   node scripts/complete-lockfile.mjs          (writes package-lock.json)
//   node scripts/complete-lockfile.mjs --check  (exits 1 when entries are missing)
import { readFileSync, writeFileSync } from 'node:fs'

const OS = [
  'darwin',
  'linux',
  'win32',
  'android',
  'freebsd',
  'openbsd',
  'netbsd',
  'sunos',
  'aix',
  'openharmony',
  'cygwin',
]
const CPU = [
  'x64',
  'arm64',
  'arm',
  'ia32',
  'ppc64',
  'ppc64le',
  's390x',
  'riscv64',
  'loong64',
  'mips64el',
  'wasm32',
  'x32',
  'armv7',
]
const ALIASES = {
  win: 'win32',
  windows: 'win32',
  macos: 'darwin',
  mac: 'darwin',
  amd64: 'x64',
  x86_64: 'x64',
  aarch64: 'arm64',
  arm64ec: 'arm64',
  armeabi: 'arm',
  eabi: null,
  gnueabihf: null,
  x86: 'ia32',
  386: 'ia32',
}

function platformOf(name) {
  const tokens = name
    .replace(/^@[^/]+\//, '')
    .split(/[-_.]/)
    .map((t) => ALIASES[t] ?? t)
  const os = tokens.find((t) => OS.includes(t))
  const cpu = tokens.find((t) => CPU.includes(t))
  const libc = tokens.includes('musl')
    ? 'musl'
    : tokens.includes('gnu') || tokens.includes('glibc')
      ? 'glibc'
      : undefined
  return { os, cpu, libc }
}

const path = 'package-lock.json'
const lock = JSON.parse(readFileSync(path, 'utf8'))
const packages = lock.packages
const added = []

function resolves(fromPath, name) {
  // Node resolution: <from>/node_modules/<name>, then each enclosing node_modules, then the root.
  let dir = fromPath
  while (dir) {
    if (packages[`${dir}/node_modules/${name}`]) return true
    const idx = dir.lastIndexOf('/node_modules/')
    dir = idx === -1 ? '' : dir.slice(0, idx)
  }
  return Boolean(packages[`node_modules/${name}`])
}

for (const [pkgPath, meta] of Object.entries(packages)) {
  const optional = meta.optionalDependencies
  if (!optional) continue
  for (const [name, spec] of Object.entries(optional)) {
    if (resolves(pkgPath, name)) continue
    const { os, cpu, libc } = platformOf(name)
    if (!os && !cpu) continue // not a platform binary: leave it to npm
    const version = String(spec).replace(/^[\^~=]/, '')
    const target = packages[`node_modules/${name}`]
      ? `${pkgPath}/node_modules/${name}`
      : `node_modules/${name}`
    const entry = { version, optional: true }
    if (meta.dev) entry.dev = true
    if (os) entry.os = [os]
    if (cpu) entry.cpu = [cpu]
    if (libc) entry.libc = [libc]
    packages[target] = entry
    added.push(`${name}@${version}`)
  }
}

if (process.argv.includes('--check')) {
  if (added.length) {
    console.error(
      `package-lock.json lacks ${added.length} optional platform packages; run node scripts/complete-lockfile.mjs`,
    )
    process.exit(1)
  }
  process.exit(0)
}
if (added.length) {
  lock.packages = Object.fromEntries(
    Object.entries(packages).sort(([a], [b]) =>
      a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0,
    ),
  )
  writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`)
}
console.log(`complete-lockfile: added ${added.length} optional platform entries`)
