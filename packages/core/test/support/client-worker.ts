/**
 * A Worker that exercises the client inside workerd (bundled from source by test/workerd.test.ts).
 * It answers with what each operation returned, so the test can assert on the Node side.
 */
import { createM2MClient } from '../../src/client/index.js'
import { M2MApiError, M2MConnectionError } from '../../src/errors.js'

interface Env {
  API_URL: string
  SECRET_KEY: string
}

function describeError(error: unknown) {
  if (error instanceof M2MApiError) {
    return {
      name: error.name,
      status: error.status,
      code: error.errors[0]?.code,
      message: error.message,
    }
  }
  if (error instanceof M2MConnectionError)
    return { name: error.name, code: error.code, message: error.message }
  return { name: (error as Error).name, message: (error as Error).message }
}

async function settle<T>(work: () => Promise<T> | T) {
  try {
    return { ok: await work() }
  } catch (error) {
    return { error: describeError(error) }
  }
}

export default {
  async fetch(_request: Request, env: Env): Promise<Response> {
    const client = createM2MClient({
      secretKey: env.SECRET_KEY,
      apiUrl: env.API_URL,
      timeoutMs: 10_000,
    })
    const subject = 'mch_2xhFjEI5X2qWRvtV13BzSj8H6Dk'
    const ids: string[] = []
    const result = {
      apiUrl: client.apiUrl,
      keyFingerprint: client.keyFingerprint,
      // No `process` in workerd without nodejs_compat: the env lookup must not throw, only report.
      noKey: await settle(() => createM2MClient()),
      created: await settle(() =>
        client.createToken({ secondsUntilExpiration: 60, claims: { a: 1 } }),
      ),
      verified: await settle(() => client.verifyToken({ token: 'mt_known_token_value' })),
      listed: await settle(async () => {
        for await (const token of client.listAllTokens({ subject, pageSize: 1 })) ids.push(token.id)
        return ids
      }),
      revoked: await settle(() =>
        client.revokeToken({
          m2mTokenId: 'mt_f7f0ba8c3b4843ce7d85fcdd5e71853e',
          revocationReason: 'r',
        }),
      ),
      unknown: await settle(() => client.verifyToken({ token: 'mt_unknown_token_value' })),
      timedOut: await settle(() => client.verifyToken({ token: 'mt_hang' }, { timeoutMs: 200 })),
      invalid: await settle(() => client.listTokens({ subject, limit: 0 })),
    }
    return Response.json(result)
  },
}
