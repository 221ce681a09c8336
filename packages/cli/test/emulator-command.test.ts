import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { EmulatorConnectionInfo } from '../src/index.js'
import { runCli } from '../src/index.js'
import { run } from './helpers.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'm2m-guard-cli-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** Runs `m2m-guard emulator …` in-process until `stop()`; `ready` resolves with its output so far. */
function startInProcess(args: string[]) {
  let stdout = ''
  let stderr = ''
  const controller = new AbortController()
  const done = runCli(['emulator', ...args], {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: {},
    signal: controller.signal,
  })
  const ready = (async () => {
    for (let i = 0; i < 200 && !stdout.includes('\n'); i++) {
      if (await Promise.race([done.then(() => true), new Promise((r) => setTimeout(r, 25, false))]))
        break
    }
    return stdout
  })()
  return {
    ready,
    stop: async () => {
      controller.abort()
      return { code: await done, stdout, stderr }
    },
  }
}

describe('m2m-guard emulator (in-process)', () => {
  it('seeds machines from a JSON file and prints them with ids and keys (--json)', async () => {
    const seedFile = join(dir, 'seed.json')
    const seed = {
      machines: [
        { name: 'billing', scopedMachines: ['ledger'], defaultTokenTtl: 600 },
        { name: 'ledger', id: `mch_${'l'.repeat(27)}`, secretKey: 'ak_ledger_dev_key_0001' },
      ],
    }
    await writeFile(seedFile, JSON.stringify(seed))
    const emulator = startInProcess(['--port', '0', '--seed', seedFile, '--json'])
    const info = JSON.parse(await emulator.ready) as EmulatorConnectionInfo
    expect(info.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(info.secretKey).toMatch(/^sk_test_/)
    const billing = info.machines.find((m) => m.name === 'billing')
    const ledger = info.machines.find((m) => m.name === 'ledger')
    expect(info.machines).toHaveLength(2)
    expect(ledger).toMatchObject({
      id: `mch_${'l'.repeat(27)}`,
      secretKey: 'ak_ledger_dev_key_0001',
    })
    expect(billing).toMatchObject({ defaultTokenTtl: 600, scopedMachines: [ledger?.id] })
    expect(billing?.secretKey).toMatch(/^ak_/)

    // The seeded keys work through the tokens commands: billing creates, ledger verifies.
    const created = await run(['tokens', 'create', '--token-only'], {
      env: { CLERK_API_URL: info.url, CLERK_MACHINE_SECRET_KEY: billing?.secretKey },
    })
    expect(created.code).toBe(0)
    const verified = await run(['tokens', 'verify', '-', '--json'], {
      env: { CLERK_API_URL: info.url, CLERK_MACHINE_SECRET_KEY: 'ak_ledger_dev_key_0001' },
      stdin: created.stdout,
    })
    expect(verified.code).toBe(0)
    expect(JSON.parse(verified.stdout)).toMatchObject({ subject: billing?.id })

    const stopped = await emulator.stop()
    expect(stopped.code).toBe(0)
    expect(stopped.stderr).toBe('')
    await expect(fetch(`${info.url}/v1/jwks`)).rejects.toThrow()
  })

  it('--data keeps keys and machines across restarts, without seeding the default pair again', async () => {
    const dataFile = join(dir, 'state.json')
    const first = startInProcess(['--port', '0', '--data', dataFile, '--json'])
    const before = JSON.parse(await first.ready) as EmulatorConnectionInfo
    expect(before.machines.map((m) => m.name).sort()).toEqual(['caller', 'receiver'])
    expect((await first.stop()).code).toBe(0)
    expect(JSON.parse(await readFile(dataFile, 'utf8'))).toMatchObject({ version: 1 })

    const second = startInProcess(['--port', '0', '--data', dataFile, '--json'])
    const after = JSON.parse(await second.ready) as EmulatorConnectionInfo
    expect(after.secretKey).toBe(before.secretKey)
    expect(after.machines).toEqual(before.machines)
    expect((await second.stop()).code).toBe(0)
  })

  it('--secret-key and --faults are applied', async () => {
    const key = `sk_test_${'f'.repeat(30)}`
    const emulator = startInProcess([
      '--port',
      '0',
      '--json',
      '--secret-key',
      key,
      '--faults',
      '{"errorRate":1,"errorStatus":503,"operations":["verifyM2MToken"]}',
    ])
    const info = JSON.parse(await emulator.ready) as EmulatorConnectionInfo
    expect(info.secretKey).toBe(key)
    const result = await run(['tokens', 'verify', `mt_${'a'.repeat(48)}`, '--timeout-ms', '3000'], {
      env: { CLERK_API_URL: info.url, CLERK_SECRET_KEY: key },
    })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('the API answered 503')
    expect((await emulator.stop()).code).toBe(0)
  })

  it('a port in use is exit 1 with a hint', async () => {
    const holder = startInProcess(['--port', '0', '--json'])
    const { url } = JSON.parse(await holder.ready) as EmulatorConnectionInfo
    const port = new URL(url).port
    const second = await run(['emulator', '--port', port])
    expect(second.code).toBe(1)
    expect(second.stderr).toContain(`port ${port} is already in use`)
    expect((await holder.stop()).code).toBe(0)
  })
})

describe('seed file validation: exit 2 naming the file and the place', () => {
  const cases: [string, unknown, RegExp][] = [
    ['not an object', [1], /must be a JSON object/],
    ['unknown top-level field', { machine: [] }, /machine is not a seed field/],
    ['machines not an array', { machines: {} }, /machines must be an array/],
    ['machine without name', { machines: [{}] }, /machines\[0\]\.name must be a string/],
    [
      'unknown machine field',
      { machines: [{ name: 'a', ttl: 5 }] },
      /machines\[0\]\.ttl is not a machine field/,
    ],
    [
      'duplicate name',
      { machines: [{ name: 'a' }, { name: 'a' }] },
      /machines\[1\]\.name repeats the name "a"/,
    ],
    [
      'bad id',
      { machines: [{ name: 'a', id: 'mch_1' }] },
      /machines\[0\]\.id must be a machine id/,
    ],
    [
      'bad key',
      { machines: [{ name: 'a', secretKey: 'sk_nope_secret' }] },
      /machines\[0\]\.secretKey must be a machine key/,
    ],
    [
      'bad ttl',
      { machines: [{ name: 'a', defaultTokenTtl: 0 }] },
      /machines\[0\]\.defaultTokenTtl must be an integer/,
    ],
    [
      'scopes not strings',
      { machines: [{ name: 'a', scopedMachines: [1] }] },
      /machines\[0\]\.scopedMachines must be an array/,
    ],
    [
      'unknown scope name',
      { machines: [{ name: 'a', scopedMachines: ['b'] }] },
      /machines\[0\]\.scopedMachines\[0\] names no machine in this file \('b'\)/,
    ],
  ]
  for (const [label, doc, message] of cases) {
    it(label, async () => {
      const file = join(dir, `${label.replaceAll(' ', '-')}.json`)
      await writeFile(file, JSON.stringify(doc))
      const result = await run(['emulator', '--port', '0', '--seed', file])
      expect(result.code).toBe(2)
      expect(result.stdout).toBe('')
      expect(result.stderr).toContain(`seed file ${file}`)
      expect(result.stderr).toMatch(message)
      expect(result.stderr).not.toContain('sk_nope_secret')
    })
  }

  it('an unknown reference that does not look like a name (a pasted key) is not echoed', async () => {
    const key = 'ak_live_PASTEDSECRET'
    const file = join(dir, 'pasted-key.json')
    await writeFile(file, JSON.stringify({ machines: [{ name: 'a', scopedMachines: [key] }] }))
    const result = await run(['emulator', '--port', '0', '--seed', file])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(
      `seed file ${file}: machines[0].scopedMachines[0] names no machine in this file and is no machine id`,
    )
    expect(result.stderr).not.toContain('PASTEDSECRET')
  })

  it('invalid JSON reports the position, never the text', async () => {
    const file = join(dir, 'broken.json')
    await writeFile(file, '{\n  "machines": [{"name": "a", "secretKey": "ak_secret_0001"}\n')
    const result = await run(['emulator', '--seed', file])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(`seed file ${file} is not valid JSON`)
    expect(result.stderr).not.toContain('ak_secret_0001')
  })

  it('a missing file', async () => {
    const result = await run(['emulator', '--seed', join(dir, 'nope.json')])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('no such file')
  })
})

// ---- the real command, spawned ----

const BIN = fileURLToPath(new URL('../bin/m2m-guard.mjs', import.meta.url))

interface Spawned {
  child: ChildProcessWithoutNullStreams
  stdout: () => string
  stderr: () => string
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const children: ChildProcessWithoutNullStreams[] = []
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL')
})

function spawnBin(args: string[], env: Record<string, string> = {}, input?: string): Spawned {
  // From source, so the test never runs a stale build.
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', M2M_GUARD_FROM_SOURCE: '1', ...env },
  })
  children.push(child)
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s))
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s))
  if (input !== undefined) child.stdin.end(input)
  // 'close', not 'exit': 'exit' can come before the last output has been read from the pipes.
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  )
  return { child, stdout: () => out, stderr: () => err, exit }
}

async function waitFor(what: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!what()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the command')
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Splits a shell line into words: single quotes, double quotes with \" and $VAR expansion. */
function shellWords(line: string, vars: Record<string, string>): string[] {
  const words: string[] = []
  let word = ''
  let inWord = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string
    if (c === "'") {
      const end = line.indexOf("'", i + 1)
      word += line.slice(i + 1, end)
      i = end
      inWord = true
    } else if (c === '"') {
      let j = i + 1
      for (; line[j] !== '"'; j++) {
        if (line[j] === '\\') word += line[++j]
        else if (line[j] === '$') {
          const name = /^\w+/.exec(line.slice(j + 1))?.[0] ?? ''
          word += vars[name] ?? ''
          j += name.length
        } else word += line[j]
      }
      i = j
      inWord = true
    } else if (c === ' ') {
      if (inWord) words.push(word)
      word = ''
      inWord = false
    } else {
      word += c
      inWord = true
    }
  }
  if (inWord) words.push(word)
  return words
}

/** Runs a printed `curl …` line with fetch: -X, -H, -d and the URL; -sS ignored. */
async function curlWithFetch(line: string, vars: Record<string, string>): Promise<Response> {
  const words = shellWords(line, vars)
  expect(words[0]).toBe('curl')
  let method = 'GET'
  let url = ''
  let body: string | undefined
  const headers: Record<string, string> = {}
  for (let i = 1; i < words.length; i++) {
    const w = words[i] as string
    if (w === '-X') method = words[++i] as string
    else if (w === '-H') {
      const [name, ...value] = (words[++i] as string).split(': ')
      headers[name as string] = value.join(': ')
    } else if (w === '-d') body = words[++i]
    else if (w === '-sS') continue
    else url = w
  }
  return fetch(url, { method, headers, ...(body === undefined ? {} : { body }) })
}

describe('m2m-guard emulator, spawned as a real process', () => {
  it('prints the key, machines and curl lines that work, then exits 0 on SIGINT', {
    timeout: 60_000,
  }, async () => {
    const emulator = spawnBin(['emulator', '--port', '0'])
    await waitFor(() => emulator.stdout().includes('Press Ctrl-C to stop.'))
    const out = emulator.stdout()
    const url = /API URL\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1] as string
    const instanceKey = /instance secret key\s+(sk_test_\w+)/.exec(out)?.[1] as string
    expect(url).toBeTruthy()
    expect(instanceKey).toBeTruthy()
    const caller = /^\s+caller\s+(mch_\w{27})\s+(ak_\w+)\s+receiver$/m.exec(out)
    const receiver = /^\s+receiver\s+(mch_\w{27})\s+(ak_\w+)\s+-$/m.exec(out)
    expect(caller).not.toBeNull()
    expect(receiver).not.toBeNull()

    const curls = out
      .split('\n')
      .map((line) => /curl .*?(?=\); echo|$)/.exec(line)?.[0])
      .filter((line): line is string => line !== undefined)
    expect(curls).toHaveLength(4)
    const [createLine, listLine, verifyLine, revokeLine] = curls as [string, string, string, string]
    expect(createLine).toContain(`Bearer ${caller?.[2]}`)

    const created = await curlWithFetch(createLine, {})
    expect(created.status).toBe(201)
    const token = (await created.json()) as {
      token: string
      id: string
      subject: string
      scopes: string[]
    }
    expect(token.subject).toBe(caller?.[1])
    expect(token.scopes).toEqual([receiver?.[1]])
    const vars = { TOKEN: token.token, TOKEN_ID: token.id }

    const listed = await curlWithFetch(listLine, vars)
    expect(listed.status).toBe(200)
    expect(((await listed.json()) as { total_count: number }).total_count).toBe(1)

    const verified = await curlWithFetch(verifyLine, vars)
    expect(verified.status).toBe(200)
    expect(((await verified.json()) as { id: string }).id).toBe(token.id)

    const revoked = await curlWithFetch(revokeLine, vars)
    expect(revoked.status).toBe(200)
    expect(((await revoked.json()) as { revoked: boolean }).revoked).toBe(true)
    expect((await curlWithFetch(verifyLine, vars)).status).toBe(404)

    // The printed m2m-guard lines work too: create with the real bin as caller (from the
    // exported environment), verify in-process as receiver.
    const env = {
      CLERK_API_URL: /export CLERK_API_URL=(\S+)/.exec(out)?.[1] as string,
      CLERK_MACHINE_SECRET_KEY: /export CLERK_MACHINE_SECRET_KEY=(\S+)/.exec(out)?.[1] as string,
    }
    const create = spawnBin(['tokens', 'create', '--token-only'], env)
    expect(await create.exit).toEqual({ code: 0, signal: null })
    const newToken = create.stdout().trim()
    expect(newToken).toMatch(/^mt_/)
    const verifyKey = /tokens verify - --secret-key (ak_\w+)/.exec(out)?.[1]
    expect(verifyKey).toBe(receiver?.[2])
    const verify = await run(['tokens', 'verify', '-', '--secret-key', verifyKey as string], {
      env,
      stdin: newToken,
    })
    expect(verify.code).toBe(0)
    expect(verify.stdout).toMatch(new RegExp(`^subject\\s+${caller?.[1]}$`, 'm'))

    emulator.child.kill('SIGINT')
    expect(await emulator.exit).toEqual({ code: 0, signal: null })
    expect(emulator.stdout()).toContain('Emulator stopped.')
    expect(emulator.stderr()).toBe('')
    await expect(fetch(`${url}/v1/jwks`)).rejects.toThrow()
  })

  it('exits 0 on SIGTERM as well', { timeout: 60_000 }, async () => {
    const emulator = spawnBin(['emulator', '--port', '0', '--json'])
    await waitFor(() => emulator.stdout().includes('\n'))
    emulator.child.kill('SIGTERM')
    expect(await emulator.exit).toEqual({ code: 0, signal: null })
  })

  it('the bin passes a failing exit code through (usage error: 2)', {
    timeout: 60_000,
  }, async () => {
    const usage = spawnBin(['tokens', 'list'])
    expect(await usage.exit).toEqual({ code: 2, signal: null })
    expect(usage.stderr()).toContain('--subject is required')
    expect(usage.stdout()).toBe('')
  })
})

/**
 * Resolves once the spawned command has opened its stdin, which happens in `runCli`, after the
 * bin set up its signal handlers: on Linux, fd 0 then turns non-blocking. Without /proc there is
 * no such signal, and a fixed wait could send the signal too early, so those tests skip there.
 */
const canSeeStdinOpen = existsSync('/proc/self/fdinfo/0')

async function stdinOpened(pid: number): Promise<void> {
  const fdinfo = `/proc/${pid}/fdinfo/0`
  const O_NONBLOCK = 0o4000
  await waitFor(() => {
    const flags = /^flags:\s*([0-7]+)$/m.exec(readFileSync(fdinfo, 'utf8'))?.[1]
    return flags !== undefined && (Number.parseInt(flags, 8) & O_NONBLOCK) !== 0
  })
}

describe('m2m-guard tokens verify -, spawned: a signal ends the wait for stdin', () => {
  const cases = [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const
  for (const [signal, code] of cases) {
    it.skipIf(!canSeeStdinOpen)(`${signal} exits ${code}`, { timeout: 60_000 }, async () => {
      // stdin is a pipe that stays open, as in `(sleep 30) | m2m-guard tokens verify -`.
      const verify = spawnBin(['tokens', 'verify', '-'], {
        CLERK_API_URL: 'http://127.0.0.1:9',
        CLERK_SECRET_KEY: 'sk_test_never_used_0001',
      })
      await stdinOpened(verify.child.pid as number)
      verify.child.kill(signal)
      expect(await verify.exit).toEqual({ code, signal: null })
      expect(verify.stderr()).toBe('m2m-guard tokens verify: interrupted\n')
      expect(verify.stdout()).toBe('')
    })
  }
})
