/**
 * The emulator in a process of its own, so the load generator and the server under test do not
 * share its event loop (Clerk's middleware calls it on every request). Prints one JSON line with
 * its coordinates, then serves until stdin closes.
 */
import { startEmulator } from '@m2m-guard/emulator'

const emulator = await startEmulator({ port: 0 })
const receiver = await emulator.createMachine({ name: 'bench-receiver' })
const caller = await emulator.createMachine({ name: 'bench-caller', scopedMachines: [receiver.id] })
process.stdout.write(
  `${JSON.stringify({
    url: emulator.url,
    secretKey: emulator.secretKey,
    receiverId: receiver.id,
    callerKey: caller.secretKey,
    jwtPublicKey: await emulator.jwtPublicKey(),
  })}\n`,
)
process.stdin.resume()
process.stdin.on('end', () => {
  void emulator.close()
})
