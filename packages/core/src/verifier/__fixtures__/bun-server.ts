/**
 * The test worker of workerd.test.ts, served by Bun instead (`Bun.serve`), for bun.test.ts: the
 * same verifier code, on Bun's `crypto.hash`, fetch transport and WebCrypto (jose).
 */
import { requiredEnv, serveOnBun } from '../../../../../test/support/bun-serve.js'
import worker from './worker.js'

const env = {
  API_URL: requiredEnv('API_URL'),
  SECRET_KEY: requiredEnv('SECRET_KEY'),
  MAX_UPSTREAM: requiredEnv('MAX_UPSTREAM'),
}

serveOnBun((request) => worker.fetch(request, env))
