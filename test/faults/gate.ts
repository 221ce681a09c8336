/**
 * A TCP gate in front of the emulator, for the "upstream gone" scenario: open, it forwards every
 * connection to the emulator; shut, nothing listens on its port any more, so a connection attempt
 * is refused (ECONNREFUSED), as when the upstream host is down; opened again, it listens on the
 * same port, so the verifier's unchanged API URL works again.
 */
import assert from 'node:assert/strict'
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net'

/**
 * A forwarder the scenario can shut (connections refused) and open again on the same port.
 *
 * @example
 * const gate: Gate = await openGate(emulator.url)
 */
export interface Gate {
  /** `http://127.0.0.1:<port>`: the API URL to give the verifier. */
  url: string
  /** Connections forwarded so far. */
  connections(): number
  /** Stops listening and cuts every forwarded connection: from now on, connecting is refused. */
  shut(): Promise<void>
  /** Listens again, on the same port. */
  open(): Promise<void>
  /** Shuts the gate for good. */
  close(): Promise<void>
}

/**
 * Opens a gate on a free port, forwarding to `target` (an `http://host:port` URL).
 *
 * @example
 * const gate = await openGate(emulator.url)
 * await gate.shut() // connecting to gate.url is now refused
 */
export async function openGate(target: string): Promise<Gate> {
  const { hostname, port: targetPort } = new URL(target)
  const sockets = new Set<Socket>()
  let forwarded = 0
  let port = 0
  let server: Server | undefined

  const track = (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    // A cut connection is this gate's doing: nothing to report.
    socket.on('error', () => {})
  }

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const next = createServer((inbound) => {
        forwarded++
        const outbound = connect(Number(targetPort), hostname)
        track(inbound)
        track(outbound)
        inbound.on('close', () => outbound.destroy())
        outbound.on('close', () => inbound.destroy())
        inbound.pipe(outbound).pipe(inbound)
      })
      next.once('error', reject)
      next.listen(port, '127.0.0.1', () => {
        next.off('error', reject)
        port = (next.address() as AddressInfo).port
        server = next
        resolve()
      })
    })

  const shut = async () => {
    const closing = server
    server = undefined
    if (closing === undefined) return
    const closed = new Promise<void>((resolve) => closing.close(() => resolve()))
    for (const socket of sockets) socket.destroy()
    await closed
  }

  await listen()
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => forwarded,
    shut,
    async open() {
      assert.equal(server, undefined, 'the gate is already open')
      await listen()
    },
    close: shut,
  }
}

/**
 * Resolves when a TCP connection to `url` is refused; throws if anything accepts it.
 *
 * @example
 * await assertRefused(gate.url)
 */
export function assertRefused(url: string): Promise<void> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    socket.once('connect', () => {
      socket.destroy()
      reject(new assert.AssertionError({ message: `${url} accepted a connection` }))
    })
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') resolve()
      else reject(err)
    })
  })
}
