/**
 * The seed file of `m2m-guard emulator --seed FILE`: JSON in the shape of the emulator's
 * `EmulatorSeed`, checked here first so a mistake exits 2 with the file and the exact place.
 */
import { readFile } from 'node:fs/promises'
import type { EmulatorSeed, SeedMachine } from '@m2m-guard/emulator'
import { UsageError } from './errors.js'
import { quoteWord } from './words.js'

const MACHINE_KEYS = ['name', 'id', 'secretKey', 'defaultTokenTtl', 'scopedMachines'] as const
const MACHINE_ID = /^mch_\w{27}$/
// A machine key as it travels in the Authorization header: ak_ and visible ASCII only.
const MACHINE_KEY = /^ak_[\x21-\x7e]+$/
const MAX_TOKEN_TTL = 315_360_000
const MAX_SCOPES = 150

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Checks a parsed seed document; `where` prefixes every message (the file name).
 *
 * @throws {UsageError} naming the first problem and its JSON path, e.g. `machines[1].name`.
 * @example
 * validateSeed({ machines: [{ name: 'caller', scopedMachines: ['receiver'] }, { name: 'receiver' }] }, 'seed.json')
 */
export function validateSeed(doc: unknown, where: string): EmulatorSeed {
  const invalid = (path: string, problem: string) =>
    new UsageError(`seed file ${where}: ${path}${path ? ' ' : ''}${problem}`, 'emulator')
  if (!isObject(doc))
    throw invalid('', 'must be a JSON object like {"machines": [{"name": "caller"}]}')
  for (const key of Object.keys(doc)) {
    // `$schema` lets editors attach a schema; anything else is most likely a typo.
    if (key !== 'machines' && key !== '$schema')
      throw invalid(key, 'is not a seed field (expected "machines")')
  }
  if (doc.machines === undefined) return { machines: [] }
  if (!Array.isArray(doc.machines)) throw invalid('machines', 'must be an array')
  const machines: SeedMachine[] = []
  const names = new Set<string>()
  const ids = new Set<string>()
  for (const [i, raw] of (doc.machines as unknown[]).entries()) {
    const at = `machines[${i}]`
    if (!isObject(raw)) throw invalid(at, 'must be an object with at least a "name"')
    for (const key of Object.keys(raw)) {
      if (!(MACHINE_KEYS as readonly string[]).includes(key)) {
        throw invalid(
          `${at}.${key}`,
          `is not a machine field (expected ${MACHINE_KEYS.join(', ')})`,
        )
      }
    }
    const { name, id, secretKey, defaultTokenTtl, scopedMachines } = raw
    if (typeof name !== 'string' || name.length < 1 || name.length > 255) {
      throw invalid(`${at}.name`, 'must be a string of 1 to 255 characters')
    }
    if (names.has(name)) throw invalid(`${at}.name`, `repeats the name "${name}"`)
    names.add(name)
    const machine: SeedMachine = { name }
    if (id !== undefined) {
      if (typeof id !== 'string' || !MACHINE_ID.test(id)) {
        throw invalid(`${at}.id`, 'must be a machine id: mch_ followed by 27 letters, digits or _')
      }
      if (ids.has(id)) throw invalid(`${at}.id`, 'repeats an id used above')
      ids.add(id)
      machine.id = id
    }
    if (secretKey !== undefined) {
      // The value is never echoed: it is a secret.
      if (typeof secretKey !== 'string' || !MACHINE_KEY.test(secretKey)) {
        throw invalid(
          `${at}.secretKey`,
          'must be a machine key: ak_ followed by visible ASCII characters',
        )
      }
      machine.secretKey = secretKey
    }
    if (defaultTokenTtl !== undefined) {
      if (
        typeof defaultTokenTtl !== 'number' ||
        !Number.isInteger(defaultTokenTtl) ||
        defaultTokenTtl < 1 ||
        defaultTokenTtl > MAX_TOKEN_TTL
      ) {
        throw invalid(
          `${at}.defaultTokenTtl`,
          `must be an integer number of seconds from 1 to ${MAX_TOKEN_TTL}`,
        )
      }
      machine.defaultTokenTtl = defaultTokenTtl
    }
    if (scopedMachines !== undefined) {
      if (!Array.isArray(scopedMachines) || scopedMachines.some((s) => typeof s !== 'string')) {
        throw invalid(`${at}.scopedMachines`, 'must be an array of machine names or ids')
      }
      if ((scopedMachines as string[]).length > MAX_SCOPES) {
        throw invalid(`${at}.scopedMachines`, `has more than ${MAX_SCOPES} entries`)
      }
      machine.scopedMachines = scopedMachines as string[]
    }
    machines.push(machine)
  }
  // References resolve once every machine is known, so order in the file does not matter. An
  // mch_ id not in the file may name a machine kept in --data, so only names must resolve here.
  machines.forEach((machine, i) => {
    machine.scopedMachines?.forEach((ref, j) => {
      if (!names.has(ref) && !ids.has(ref) && !MACHINE_ID.test(ref)) {
        // Quoted only when it looks like a name: a reference may be a key pasted in the wrong spot.
        const quoted = quoteWord(ref).trim()
        throw invalid(
          `machines[${i}].scopedMachines[${j}]`,
          quoted
            ? `names no machine in this file (${quoted})`
            : 'names no machine in this file and is no machine id (mch_…); its value is not shown, as it may be a key',
        )
      }
    })
  })
  return { machines }
}

/**
 * Reads and validates a seed file.
 *
 * @throws {UsageError} when the file is missing, not JSON, or not a valid seed.
 * @example
 * const seed = await readSeedFile('examples/seed.json')
 */
export async function readSeedFile(file: string): Promise<EmulatorSeed> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code
    throw new UsageError(
      `cannot read seed file ${file}${code === 'ENOENT' ? ': no such file' : code ? ` (${code})` : ''}`,
      'emulator',
      { cause },
    )
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (cause) {
    // V8's message quotes the text around the error, which may hold a machine key: report only
    // the position, as line and column.
    const position = /position (\d+)/.exec(cause instanceof Error ? cause.message : '')?.[1]
    let detail = ''
    if (position !== undefined) {
      const before = text.slice(0, Number(position)).split('\n')
      detail = ` (line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1})`
    }
    throw new UsageError(`seed file ${file} is not valid JSON${detail}`, 'emulator', { cause })
  }
  return validateSeed(doc, file)
}
