import type { FetchLike } from '../types.js'
import { collectText, type Transport, type TransportResponse } from './transport.js'

async function* readStream(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      yield value
    }
  } finally {
    // Stops the download when the body is over the cap or the read was abandoned.
    reader.cancel().catch(() => {})
  }
}

/**
 * Adapts a Fetch API function into a {@link Transport}.
 *
 * @example
 * const send = fetchTransport(globalThis.fetch)
 */
export function fetchTransport(fetchImpl: FetchLike): Transport {
  return async function sendWithFetch(request) {
    const response = await fetchImpl(request.origin + request.path, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: request.abort.signal,
      // Following a redirect could carry the secret key to another host: a 3xx is an error here.
      redirect: 'manual',
    })
    let consumed = false
    const result: TransportResponse = {
      status: response.status,
      header: (name) => response.headers.get(name) ?? undefined,
      text: async () => {
        if (consumed) throw new Error('response body already read')
        consumed = true
        return response.body ? collectText(readStream(response.body)) : ''
      },
    }
    return result
  }
}
