import { createServer, request as httpRequest, type RequestListener, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type CreateTokenParams, createM2MClient, type M2MTokenWithSecret } from '@m2m-guard/core'
import { type Emulator, type EmulatorMachine, startEmulator } from '@m2m-guard/emulator'

/**
 * The real emulator with three machines: `caller` may call `receiver`, `outsider` may not.
 * The guarded service verifies with the instance key (`sk_…`) and `machineId: receiver.id`, so a
 * token of `outsider` verifies upstream and is refused by the machineId check (403).
 */
export interface World {
  emulator: Emulator
  receiver: EmulatorMachine
  caller: EmulatorMachine
  outsider: EmulatorMachine
  /** Verifier options of the guarded service. */
  verifierOptions: { secretKey: string; apiUrl: string; machineId: string }
  mint(machine: EmulatorMachine, params?: CreateTokenParams): Promise<M2MTokenWithSecret>
  revoke(machine: EmulatorMachine, m2mTokenId: string): Promise<void>
  /** verifyM2MToken calls the emulator has answered so far. */
  verifyCalls(): number
}

export async function startWorld(): Promise<World> {
  const emulator = await startEmulator({ port: 0 })
  const receiver = await emulator.createMachine({ name: 'receiver' })
  const caller = await emulator.createMachine({ name: 'caller', scopedMachines: [receiver.id] })
  const outsider = await emulator.createMachine({ name: 'outsider' })
  const clientOf = (machine: EmulatorMachine) =>
    createM2MClient({ secretKey: machine.secretKey, apiUrl: emulator.url, retry: false })
  return {
    emulator,
    receiver,
    caller,
    outsider,
    verifierOptions: {
      secretKey: emulator.secretKey,
      apiUrl: emulator.url,
      machineId: receiver.id,
    },
    mint: (machine, params = {}) => clientOf(machine).createToken(params),
    revoke: async (machine, m2mTokenId) => {
      await clientOf(machine).revokeToken({ m2mTokenId })
    },
    verifyCalls: () => emulator.stats().byOperation.verifyM2MToken ?? 0,
  }
}

/** Listens on 127.0.0.1, port 0; supertest uses the bound address of a listening server. */
export async function listen(handler: RequestListener): Promise<Server> {
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server
}

export function closeServer(server: Server): Promise<void> {
  server.closeAllConnections()
  return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())))
}

/**
 * Sends raw header lines (so a header can be repeated, which supertest cannot do) and returns
 * status, headers and body.
 */
export function rawRequest(
  server: Server,
  path: string,
  headers: string[],
): Promise<{
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}> {
  const { port } = server.address() as AddressInfo
  return new Promise((resolve, reject) => {
    // With raw header lines Node adds no Host header, which HTTP/1.1 servers must refuse.
    const lines = ['Host', `127.0.0.1:${port}`, ...headers]
    const req = httpRequest({ host: '127.0.0.1', port, path, headers: lines }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}
