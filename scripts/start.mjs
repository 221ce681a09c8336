// `npm start`: runs the guided demo (scripts/demo.ts). Plain JavaScript so it works before any
// build: it starts Node again with tsx and the `@m2m-guard/source` export condition, so the demo
// and the examples run from the packages' TypeScript sources, never from a stale dist/.
// Arguments are passed through: `npm start -- --once` runs the walk once and exits.
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const fail = (message) => {
  process.stderr.write(`m2m-guard demo: ${message}\n`)
  process.exit(1)
}

// The packages need Node 20.19 (require(esm) for jose in the CJS builds); say so plainly.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 20 || (major === 20 && minor < 19)) {
  fail(`Node ${process.versions.node} is too old; use Node 20.19 or newer.`)
}

try {
  createRequire(import.meta.url).resolve('tsx')
} catch {
  fail('dependencies are missing. Run `npm install` in the repository root first.')
}

const child = spawn(
  process.execPath,
  [
    '--conditions=@m2m-guard/source',
    '--import',
    'tsx',
    fileURLToPath(new URL('./demo.ts', import.meta.url)),
    ...process.argv.slice(2),
  ],
  { cwd: root, stdio: 'inherit' },
)

// Signals are passed on and this process waits for the demo to close its servers. (Ctrl-C also
// reaches the demo directly, through the process group; it handles a second signal as a no-op.)
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal))
child.on('error', (err) => fail(`could not start Node: ${err.message}`))
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
