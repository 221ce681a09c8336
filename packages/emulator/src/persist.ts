/** State file: read once at start, rewritten atomically (temp file + rename) after changes. */
import { readFileSync } from 'node:fs'
import { mkdir, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { PersistedState } from './store.js'

/** Reads the state file; `undefined` when it does not exist yet. Throws naming the file when corrupt. */
export function readState(file: string): PersistedState | undefined {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new Error(`Cannot read emulator dataFile ${file}`, { cause: err })
  }
  let state: unknown
  try {
    state = JSON.parse(text)
  } catch (err) {
    throw new Error(`Emulator dataFile ${file} is not valid JSON`, { cause: err })
  }
  const s = state as Partial<PersistedState> | null
  if (
    s?.version !== 1 ||
    typeof s.secretKey !== 'string' ||
    typeof s.instanceId !== 'string' ||
    !Array.isArray(s.machines) ||
    !Array.isArray(s.tokens)
  ) {
    throw new Error(`Emulator dataFile ${file} is not an emulator state file (version 1)`)
  }
  return s as PersistedState
}

/** Coalesces bursts of changes into one write; writes never overlap; `flush()` waits for the last. */
export class Persister {
  private timer: NodeJS.Timeout | undefined
  private writing: Promise<void> = Promise.resolve()
  private dirty = false
  private sequence = 0

  constructor(
    private readonly file: string,
    private readonly snapshot: () => PersistedState,
    private readonly onError: (err: unknown) => void,
    private readonly delayMs = 25,
  ) {}

  schedule(): void {
    this.dirty = true
    if (this.timer) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      void this.write()
    }, this.delayMs)
  }

  private write(): Promise<void> {
    if (!this.dirty) return this.writing
    this.dirty = false
    const json = JSON.stringify(this.snapshot())
    // A unique temp name per write, in the same directory, so rename() is atomic and two
    // writes never share a temp file.
    const tmp = `${this.file}.${process.pid}.${++this.sequence}.tmp`
    this.writing = this.writing.then(async () => {
      try {
        await mkdir(dirname(this.file), { recursive: true })
        await writeFile(tmp, json, { mode: 0o600 })
        await rename(tmp, this.file)
      } catch (err) {
        this.onError(err)
      }
    })
    return this.writing
  }

  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
    await this.write()
    await this.writing
  }
}
