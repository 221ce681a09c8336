/**
 * The world every adapter package's tests run in: the real emulator and three machines. Shared so
 * that Express, Fastify and Hono are tested against the same setup, written once.
 */
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
