/**
 * The READMEs are checked against the code, so they cannot drift from it:
 *
 * - every ```ts block of the root README, the package READMEs and the example READMEs compiles,
 *   strict, against the packages' sources (the `@m2m-guard/source` condition). A fragment gets a
 *   prelude that declares only the free names it relies on (`app`, `client`, …), chosen per README;
 * - the API client snippets (root README, packages/core) and the emulator's example run as written,
 *   as child processes, against a real emulator;
 * - the root README's cheap shell commands run (`npx m2m-guard tokens --help`,
 *   `npx m2m-guard emulator` until Ctrl-C), and every npm script, workspace, Vitest project and
 *   relative link the READMEs name exists.
 *
 * packages/cli/test/readme.test.ts runs the CLI README's shell session; it is not repeated here.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Emulator, startEmulator } from '@m2m-guard/emulator'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
// .tmp/ is git-ignored and inside the repo, so snippets resolve packages from its node_modules.
const WORK = join(ROOT, '.tmp', `readme-${process.pid}`)

const PACKAGE_READMES = [
  'core',
  'express',
  'fastify',
  'hono',
  'emulator',
  'redis',
  'cloudflare',
  'cli',
].map((name) => `packages/${name}/README.md`)
const EXAMPLE_READMES = readdirSync(join(ROOT, 'examples'))
  .map((name) => `examples/${name}/README.md`)
  .filter((path) => existsSync(join(ROOT, path)))
const READMES = ['README.md', ...PACKAGE_READMES, ...EXAMPLE_READMES]

interface Block {
  /** README path from the repo root. */
  file: string
  /** 1-based line of the block's first code line in the README. */
  line: number
  lang: string
  code: string
  /** The Markdown heading the block sits under. */
  section: string
}

function extractBlocks(file: string): Block[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n')
  const blocks: Block[] = []
  let section = ''
  for (let i = 0; i < lines.length; i++) {
    const heading = /^#{1,6}\s+(.*)$/.exec(lines[i] as string)
    if (heading) section = heading[1] as string
    const fence = /^```(\w*)\s*$/.exec(lines[i] as string)
    if (!fence) continue
    const start = i + 1
    let end = start
    while (end < lines.length && !/^```\s*$/.test(lines[end] as string)) end++
    if (end >= lines.length) throw new Error(`${file}:${i + 1}: unterminated code fence`)
    blocks.push({
      file,
      line: start + 1,
      lang: fence[1] ?? '',
      code: lines.slice(start, end).join('\n'),
      section,
    })
    i = end
  }
  return blocks
}

const ALL_BLOCKS = READMES.flatMap(extractBlocks)
const TS_BLOCKS = ALL_BLOCKS.filter((b) => b.lang === 'ts' || b.lang === 'typescript')
const SH_BLOCKS = ALL_BLOCKS.filter((b) => b.lang === 'sh' || b.lang === 'bash')

function tsBlock(file: string, section: string, contains?: string): Block {
  const found = TS_BLOCKS.filter(
    (b) => b.file === file && b.section === section && (!contains || b.code.includes(contains)),
  )
  if (found.length !== 1) {
    throw new Error(`expected one ts block in ${file} under "${section}", found ${found.length}`)
  }
  return found[0] as Block
}

// ---------------------------------------------------------------------------------------------
// Preludes: what a fragment may take for granted. Only names the block uses and does not declare
// itself are added, so a block that declares everything compiles exactly as written.

const HONO_APP = "declare const app: import('hono').Hono"
const EXPRESS_APP = "declare const app: import('express').Express"
const FASTIFY_APP = "declare const app: import('fastify').FastifyInstance"

type Free = Record<string, string | ((code: string) => string)>

const FREE_NAMES: Record<string, Free> = {
  'README.md': {
    app: (code) =>
      code.includes('@m2m-guard/fastify')
        ? FASTIFY_APP
        : code.includes('@m2m-guard/hono')
          ? HONO_APP
          : EXPRESS_APP,
  },
  'packages/core/README.md': {
    createM2MClient: "import { createM2MClient } from '@m2m-guard/core'",
    client: "declare const client: import('@m2m-guard/core').M2MClient",
    token: 'declare const token: string',
  },
  'packages/emulator/README.md': {
    emulator: "declare const emulator: import('@m2m-guard/emulator').Emulator",
    worker: "declare const worker: import('@m2m-guard/emulator').EmulatorMachine",
  },
  'packages/cloudflare/README.md': {
    // A Worker's Env, as `wrangler types` generates it for the README's wrangler.toml.
    Env: 'interface Env { M2M_CACHE: KVNamespace }',
    app: "declare const app: import('hono').Hono<{ Bindings: Env }>",
  },
  'examples/express/README.md': {
    express: "import express from 'express'",
    requireM2M: "import { requireM2M } from '@m2m-guard/express'",
    getM2M: "import { getM2M } from '@m2m-guard/express'",
  },
  'examples/fastify/README.md': {
    Fastify: "import Fastify from 'fastify'",
    m2mGuard: "import m2mGuard from '@m2m-guard/fastify'",
  },
  'examples/hono-node/README.md': {
    Hono: "import { Hono } from 'hono'",
    requireM2M: "import { requireM2M } from '@m2m-guard/hono'",
  },
  'examples/hono-workers/README.md': {
    Hono: "import { Hono } from 'hono'",
    requireM2M: "import { requireM2M } from '@m2m-guard/hono'",
    Env: "import type { Env } from '@m2m-guard/example-hono-workers/app'",
  },
}

// What a Workers project has from @cloudflare/workers-types; the packages themselves need none.
const WORKERS_AMBIENT = `
type KVNamespace = import('@m2m-guard/cloudflare').KVNamespaceLike
type ExecutionContext = import('hono').ExecutionContext
declare module 'cloudflare:workers' {
  export function waitUntil(promise: Promise<unknown>): void
}
`

/** Names a block declares at any level, and names it references (property names excluded). */
function namesOf(code: string): { declared: Set<string>; used: Set<string> } {
  const source = ts.createSourceFile('block.ts', code, ts.ScriptTarget.Latest, true)
  const declared = new Set<string>()
  const used = new Set<string>()
  const visit = (node: ts.Node): void => {
    if (ts.isIdentifier(node)) {
      const parent = node.parent
      const isName =
        parent !== undefined &&
        (ts.isVariableDeclaration(parent) ||
          ts.isBindingElement(parent) ||
          ts.isImportSpecifier(parent) ||
          ts.isImportClause(parent) ||
          ts.isNamespaceImport(parent) ||
          ts.isFunctionDeclaration(parent) ||
          ts.isClassDeclaration(parent) ||
          ts.isInterfaceDeclaration(parent) ||
          ts.isTypeAliasDeclaration(parent) ||
          ts.isParameter(parent)) &&
        (parent as { name?: ts.Node }).name === node
      const isProperty =
        parent !== undefined &&
        (((ts.isPropertyAccessExpression(parent) ||
          ts.isPropertyAssignment(parent) ||
          ts.isPropertySignature(parent) ||
          ts.isPropertyDeclaration(parent) ||
          ts.isMethodDeclaration(parent) ||
          ts.isMethodSignature(parent)) &&
          parent.name === node) ||
          (ts.isQualifiedName(parent) && parent.right === node))
      if (isName) declared.add(node.text)
      else if (!isProperty) used.add(node.text)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return { declared, used }
}

function preludeFor(block: Block): string[] {
  const free = FREE_NAMES[block.file] ?? {}
  const { declared, used } = namesOf(block.code)
  const lines: string[] = []
  for (const [name, line] of Object.entries(free)) {
    if (used.has(name) && !declared.has(name)) {
      lines.push(typeof line === 'function' ? line(block.code) : line)
    }
  }
  return lines
}

function slug(block: Block): string {
  return `${block.file.replace(/\/README\.md$/, '').replaceAll('/', '-')}-L${block.line}`
}

async function typecheck(blocks: Block[]): Promise<string[]> {
  const dir = join(WORK, 'typecheck')
  await mkdir(dir, { recursive: true })
  const ambient = join(dir, 'workers-ambient.d.ts')
  await writeFile(ambient, WORKERS_AMBIENT)
  const files = new Map<string, { block: Block; preludeLines: number }>()
  for (const block of blocks) {
    const file = join(dir, `${slug(block).replace(/^README\.md/, 'root')}.ts`)
    const prelude = preludeFor(block)
    // `export {}` makes every block a module: top-level await works, and a `declare module`
    // in a block is an augmentation, as in the user's own module.
    await writeFile(file, `${[...prelude, block.code].join('\n')}\nexport {}\n`)
    files.set(file, { block, preludeLines: prelude.length })
  }
  const config = ts.getParsedCommandLineOfConfigFile(
    join(ROOT, 'test', 'tsconfig.json'),
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} },
  )
  if (!config) throw new Error('cannot read test/tsconfig.json')
  const program = ts.createProgram({
    rootNames: [ambient, ...files.keys()],
    options: { ...config.options, noEmit: true, incremental: false, tsBuildInfoFile: undefined },
  })
  // Only the snippets are checked: the packages' own typecheck covers their sources, and skipping
  // them keeps this fast.
  const diagnostics = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...[ambient, ...files.keys()].flatMap((name) => {
      const source = program.getSourceFile(name)
      if (!source) throw new Error(`not in the program: ${name}`)
      return [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]
    }),
  ]
  return diagnostics.map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n')
    const origin = d.file ? files.get(d.file.fileName) : undefined
    if (!d.file || d.start === undefined) return message
    const { line } = d.file.getLineAndCharacterOfPosition(d.start)
    if (!origin) return `${relative(ROOT, d.file.fileName)}:${line + 1}: ${message}`
    return `${origin.block.file}:${origin.block.line + line - origin.preludeLines}: ${message}`
  })
}

// ---------------------------------------------------------------------------------------------
// Child processes

interface Ran {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

function collect(child: ChildProcess, timeoutMs: number): Promise<Ran> {
  return new Promise((resolve, reject) => {
    let stdout = ''
    let stderr = ''
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s))
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, timeoutMs)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** Runs a block exactly as written (no prelude), the way a user runs TypeScript: tsx. */
async function runBlock(block: Block, env: Record<string, string>): Promise<Ran> {
  const dir = join(WORK, 'run')
  await mkdir(dir, { recursive: true })
  const file = join(dir, `${slug(block).replace(/^README\.md/, 'root')}.mts`)
  await writeFile(file, `${block.code}\n`)
  // Only what a shell would have, plus the snippet's variables: no CLERK_* leaks in from here.
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('CLERK_')),
  ) as Record<string, string>
  const child = spawn(
    process.execPath,
    ['--conditions=@m2m-guard/source', '--import', 'tsx', file],
    { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  return collect(child, 20_000)
}

/** A root README shell command, run through bash in the repo root; `npx m2m-guard` from source. */
function spawnCommand(command: string): ChildProcess {
  return spawn('bash', ['-c', command], {
    cwd: ROOT,
    // Its own process group, so that SIGINT reaches it (and npx's child) as Ctrl-C would.
    detached: true,
    env: { ...process.env, M2M_GUARD_FROM_SOURCE: '1', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

/** The line of a README sh block that starts with `command` (a trailing comment stripped). */
function shellLine(file: string, command: string): string {
  const line = SH_BLOCKS.filter((b) => b.file === file)
    .flatMap((b) => b.code.split('\n'))
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .find((l) => l === command || l.startsWith(`${command} `))
  if (line === undefined) throw new Error(`${file} no longer shows \`${command}\``)
  return line
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  await mkdir(WORK, { recursive: true })
})

afterAll(async () => {
  // M2M_GUARD_KEEP_SNIPPETS=1 keeps the generated files, to read a failure's context.
  if (process.env['M2M_GUARD_KEEP_SNIPPETS'] !== '1')
    await rm(WORK, { recursive: true, force: true })
})

describe('README snippets', () => {
  it('finds the ts blocks of every README (an empty extraction fails)', () => {
    expect(TS_BLOCKS.length).toBeGreaterThanOrEqual(20)
    const withTs = new Set(TS_BLOCKS.map((b) => b.file))
    for (const file of ['README.md', ...PACKAGE_READMES]) expect(withTs).toContain(file)
    expect(SH_BLOCKS.some((b) => b.file === 'README.md')).toBe(true)
  })

  it('typechecks every ts block, strict, against the sources', { timeout: 60_000 }, async () => {
    expect(TS_BLOCKS.length).toBeGreaterThan(0)
    expect(await typecheck(TS_BLOCKS)).toEqual([])
  })

  it('declares no free name a block does not use, so preludes cannot hide a mistake', () => {
    // Every prelude entry must be needed by at least one block of its README.
    for (const [file, free] of Object.entries(FREE_NAMES)) {
      const blocks = TS_BLOCKS.filter((b) => b.file === file)
      for (const name of Object.keys(free)) {
        const needed = blocks.some((b) => {
          const { declared, used } = namesOf(b.code)
          return used.has(name) && !declared.has(name)
        })
        expect(needed, `${file}: prelude name \`${name}\``).toBe(true)
      }
    }
  })
})

describe('the client snippets run as written against the emulator', () => {
  let emulator: Emulator
  let receiver: { id: string; secretKey: string }
  let caller: { id: string; secretKey: string }

  beforeAll(async () => {
    emulator = await startEmulator({ port: 0 })
    receiver = await emulator.createMachine({ name: 'receiver' })
    caller = await emulator.createMachine({ name: 'caller', scopedMachines: [receiver.id] })
  })

  afterAll(async () => {
    await emulator?.close()
  })

  // The caller mints with its machine key; the receiving API verifies with its own (scoped) key.
  const envFor = (): Record<string, string> => ({
    CLERK_API_URL: emulator.url,
    CLERK_MACHINE_SECRET_KEY: receiver.secretKey,
    CALLER_MACHINE_SECRET_KEY: caller.secretKey,
  })

  it('README.md, "The API client"', { timeout: 30_000 }, async () => {
    const block = tsBlock('README.md', 'The API client')
    emulator.resetStats()
    const ran = await runBlock(block, envFor())
    expect(ran.stderr).toBe('')
    expect(ran.code).toBe(0)
    const ops = emulator.stats().byOperation
    expect(ops['createM2MToken']).toBe(1)
    expect(ops['verifyM2MToken']).toBe(1)
    expect(ops['getM2MTokens']).toBe(1)
    expect(ops['revokeM2MToken']).toBe(1)
  })

  it('packages/core/README.md, "API client"', { timeout: 30_000 }, async () => {
    const block = tsBlock('packages/core/README.md', 'API client')
    emulator.resetStats()
    const ran = await runBlock(block, envFor())
    expect(ran.stderr).toBe('')
    expect(ran.code).toBe(0)
    const [first, ...listed] = ran.stdout.trimEnd().split('\n')
    // console.log(verified.subject, verified.scopes, verified.expiration)
    expect(first).toMatch(new RegExp(`^${caller.id} \\[ '${receiver.id}' \\] \\d{13}$`))
    // Then every token of the caller (this one, not yet revoked), id and `revoked`.
    expect(listed.length).toBeGreaterThanOrEqual(1)
    for (const line of listed) expect(line).toMatch(/^mt_[0-9a-f]{32} false$/)
    const ops = emulator.stats().byOperation
    expect(ops['createM2MToken']).toBe(1)
    expect(ops['verifyM2MToken']).toBe(1)
    expect(ops['revokeM2MToken']).toBe(1)
  })

  it('packages/emulator/README.md, "Example"', { timeout: 30_000 }, async () => {
    const ran = await runBlock(
      tsBlock('packages/emulator/README.md', 'Example', 'startEmulator'),
      {},
    )
    expect(ran.stderr).toBe('')
    expect(ran.code).toBe(0)
  })
})

describe('the root README shell commands', () => {
  it('`npx m2m-guard tokens --help` exits 0 and lists the four commands', {
    timeout: 30_000,
  }, async () => {
    const ran = await collect(spawnCommand(shellLine('README.md', 'npx m2m-guard tokens')), 25_000)
    expect(ran.code).toBe(0)
    for (const command of ['create', 'list', 'revoke', 'verify']) {
      expect(ran.stdout).toMatch(new RegExp(`^ {2}${command} `, 'm'))
    }
  })

  it('`npx m2m-guard emulator` prints the key, machines and curl lines, and stops on Ctrl-C', {
    timeout: 30_000,
  }, async () => {
    const command = shellLine('README.md', 'npx m2m-guard emulator')
    expect(command).toBe('npx m2m-guard emulator')
    // Only the port differs from the README (:4010): tests never take a fixed port.
    const child = spawnCommand(`${command} --port 0`)
    const ready = new Promise<void>((resolve) => {
      let seen = ''
      child.stdout?.on('data', (chunk: string | Buffer) => {
        seen += chunk.toString()
        if (seen.includes('Press Ctrl-C')) resolve()
      })
    })
    const done = collect(child, 25_000)
    await Promise.race([ready, done])
    process.kill(-(child.pid as number), 'SIGINT')
    const ran = await done
    expect(ran.stdout).toMatch(/instance secret key\s+sk_test_\w+/)
    expect(ran.stdout).toMatch(/^\s+caller\s+mch_\w{27}\s+ak_\w+\s+receiver$/m)
    expect(ran.stdout).toMatch(/^\s+receiver\s+mch_\w{27}\s+ak_\w+/m)
    expect(ran.stdout).toContain('curl -sS -X POST http://127.0.0.1:')
    expect(ran.stdout).toContain('Emulator stopped.')
    // npm exec re-raises the signal its child got; the command itself closed cleanly.
    expect(ran.code === 0 || ran.signal === 'SIGINT').toBe(true)
  })
})

describe('what the READMEs name exists', () => {
  const rootPackage = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>
  }
  const workspaces = new Map<string, { dir: string; scripts: Record<string, string> }>()
  for (const parent of ['packages', 'examples']) {
    for (const name of readdirSync(join(ROOT, parent))) {
      const path = join(ROOT, parent, name, 'package.json')
      if (!existsSync(path)) continue
      const pkg = JSON.parse(readFileSync(path, 'utf8')) as {
        name: string
        scripts?: Record<string, string>
      }
      workspaces.set(pkg.name, { dir: `${parent}/${name}`, scripts: pkg.scripts ?? {} })
    }
  }
  const shellLines = SH_BLOCKS.flatMap((b) =>
    b.code.split('\n').map((text) => ({ file: b.file, text: text.replace(/\s+#.*$/, '') })),
  )

  it('npm scripts, workspaces and Vitest projects', () => {
    const checked: string[] = []
    for (const { file, text } of shellLines) {
      for (const npm of text.matchAll(/\bnpm (?:run (\S+)|(start|test))(?: -w (\S+))?/g)) {
        const script = (npm[1] ?? npm[2]) as string
        const workspace = npm[3]
        // In an example's README, `npm start` without -w runs in that example's directory.
        const scripts = workspace
          ? workspaces.get(workspace)?.scripts
          : file.startsWith('examples/')
            ? [...workspaces.values()].find((w) => `${w.dir}/README.md` === file)?.scripts
            : rootPackage.scripts
        expect(Object.keys(scripts ?? {}), `${file}: \`${text.trim()}\``).toContain(script)
        checked.push(text)
      }
    }
    // Vitest projects named in prose (`npx vitest run --project x`).
    for (const file of READMES) {
      const text = readFileSync(join(ROOT, file), 'utf8')
      for (const [, project] of text.matchAll(/vitest run --project ([\w-]+)/g)) {
        const name = project as string
        const dir = name.startsWith('example-')
          ? `examples/${name.slice('example-'.length)}`
          : `packages/${name}`
        expect(existsSync(join(ROOT, dir)), `${file}: project ${name}`).toBe(true)
        checked.push(name)
      }
    }
    expect(checked.length).toBeGreaterThanOrEqual(10)
  })

  it('relative links and paths', () => {
    let links = 0
    for (const file of READMES) {
      const text = readFileSync(join(ROOT, file), 'utf8')
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const path = (target as string).split('#')[0] as string
        if (/^[a-z]+:/.test(path) || path === '') continue
        links++
        expect(existsSync(join(ROOT, dirname(file), path)), `${file}: link ${target}`).toBe(true)
      }
    }
    expect(links).toBeGreaterThan(10)
  })

  it('file paths in backticks', () => {
    let paths = 0
    for (const file of READMES) {
      const text = readFileSync(join(ROOT, file), 'utf8')
      // `src/app.ts`, `test/smoke.test.ts`, `spec/clerk-bapi-m2m.yml`: from the README or the root.
      for (const [, path] of text.matchAll(
        /`([\w.-]+(?:\/[\w.-]+)+\.(?:ts|mjs|json|toml|yml|md))`/g,
      )) {
        paths++
        const found = [join(ROOT, dirname(file), path as string), join(ROOT, path as string)]
        expect(
          found.some((p) => existsSync(p)),
          `${file}: \`${path}\``,
        ).toBe(true)
      }
    }
    expect(paths).toBeGreaterThan(10)
  })
})
