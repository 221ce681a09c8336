/**
 * Process entry of `m2m-guard` (bin/m2m-guard.mjs loads it): real streams and environment,
 * SIGINT/SIGTERM turned into the abort signal `runCli` stops on (exit 130 / 143), exit code set on
 * the process.
 */
import { runCli } from './run.js'

const stop = new AbortController()
// Listening replaces Node's default "die on signal", so the emulator can close cleanly and the
// exit code is ours. The reason is the signal's name, so that SIGTERM exits 143 and SIGINT 130.
// A second signal while closing just repeats the abort (idempotent: the first reason stays).
const onSignal = (signal: NodeJS.Signals) => stop.abort(signal)
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)
// `m2m-guard … | head` closes the pipe early: that is the reader being done, not a crash. Stop
// (the emulator closes cleanly) instead of dying on an unhandled EPIPE.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err
  stop.abort()
})

runCli(process.argv.slice(2), { signal: stop.signal }).then(
  (code) => {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.exitCode = code
  },
  (err: unknown) => {
    // runCli reports every error itself; reaching here is a bug, so show the stack.
    console.error(err)
    process.exitCode = 1
  },
)
