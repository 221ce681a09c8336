/**
 * @m2m-guard/emulator: a local, wire-compatible emulator of Clerk's M2M token and Machines API.
 */
export { startEmulator } from './emulator.js'
export { M2M_JWT_CATEGORY } from './jwt.js'
export type {
  Emulator,
  EmulatorFaults,
  EmulatorMachine,
  EmulatorOptions,
  EmulatorSeed,
  EmulatorStats,
  EmulatorToken,
  EmulatorTokenOptions,
  FaultsPatch,
  SeedMachine,
} from './types.js'
