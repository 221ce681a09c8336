/**
 * The soak's emulator, in its own process: it stores every token minted during the run, so in
 * the soak's process it would make the memory slope meaningless. Prints its coordinates as one
 * JSON line; exits when stdin closes.
 */
import { startEmulator } from '@m2m-guard/emulator'

const emulator = await startEmulator({ port: 0 })
const receiver = await emulator.createMachine({ name: 'soak-receiver' })
const caller = await emulator.createMachine({ name: 'soak-caller', scopedMachines: [receiver.id] })
process.stdout.write(
  `${JSON.stringify({
    url: emulator.url,
    secretKey: emulator.secretKey,
    receiverId: receiver.id,
    callerId: caller.id,
    callerKey: caller.secretKey,
  })}\n`,
)
process.stdin.resume()
process.stdin.on('end', () => {
  void emulator.close()
})
