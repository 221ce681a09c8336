/**
 * The emulator in its own process, so the benchmark's timings are not shared with the server's
 * event loop. Prints one JSON line with its coordinates, exits when stdin closes.
 */
import { startEmulator } from '@m2m-guard/emulator'

const emulator = await startEmulator({ port: 0 })
const service = await emulator.createMachine({ name: 'bench-service' })
const caller = await emulator.createMachine({ name: 'bench-caller', scopedMachines: [service.id] })
process.stdout.write(
  `${JSON.stringify({ url: emulator.url, secretKey: emulator.secretKey, callerKey: caller.secretKey, serviceId: service.id })}\n`,
)
process.stdin.resume()
process.stdin.on('end', () => {
  void emulator.close().then(() => process.exit(0))
})
