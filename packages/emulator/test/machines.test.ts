import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type Emulator, startEmulator } from '../src/index.js'
import { type Call, client, errorCode, manualClock, type Token } from './helpers.js'

interface Machine {
  object: 'machine'
  id: string
  name: string
  instance_id: string
  created_at: number
  updated_at: number
  default_token_ttl: number
  scoped_machines: Omit<Machine, 'scoped_machines'>[]
  secret_key?: string
}

let emulator: Emulator
let call: Call
let clock: ReturnType<typeof manualClock>
let sk: string

beforeEach(async () => {
  clock = manualClock(Date.now())
  emulator = await startEmulator({ now: clock.now })
  call = client(emulator)
  sk = emulator.secretKey
})
afterEach(() => emulator.close())

const createMachine = (body: unknown, prefix: '' | '/v1' = '/v1') =>
  call<Machine>('CreateMachine', 'POST', '/machines', { key: sk, body, prefix })

describe.each(['/v1', ''] as const)('Machines under prefix %j', (prefix) => {
  it('create, get, update, list, delete', async () => {
    const target = await createMachine({ name: 'target' }, prefix)
    expect(target.status).toBe(200)
    const created = await createMachine(
      { name: 'worker', scoped_machines: [target.body.id], default_token_ttl: 120 },
      prefix,
    )
    expect(created.status).toBe(200)
    expect(created.body).toMatchObject({
      object: 'machine',
      name: 'worker',
      default_token_ttl: 120,
      scoped_machines: [{ id: target.body.id, name: 'target', object: 'machine' }],
    })
    expect(created.body.secret_key).toMatch(/^ak_/)
    expect(created.body.instance_id).toMatch(/^ins_\w{27}$/)
    const id = created.body.id

    const got = await call<Machine>('GetMachine', 'GET', `/machines/${id}`, { key: sk, prefix })
    expect(got.status).toBe(200)
    expect(got.body).not.toHaveProperty('secret_key')
    expect(got.body.scoped_machines).toHaveLength(1)

    clock.advance(5)
    const patched = await call<Machine>('UpdateMachine', 'PATCH', `/machines/${id}`, {
      key: sk,
      body: { name: 'renamed', default_token_ttl: 30 },
      prefix,
    })
    expect(patched.status).toBe(200)
    expect(patched.body).toMatchObject({
      name: 'renamed',
      default_token_ttl: 30,
      updated_at: clock.now(),
    })

    const list = await call<{ data: Machine[]; total_count: number }>(
      'ListMachines',
      'GET',
      '/machines',
      { key: sk, prefix },
    )
    expect(list.status).toBe(200)
    expect(list.body.total_count).toBe(2)
    expect(list.body.data.map((m) => m.name)).toEqual(['renamed', 'target'])

    const deleted = await call('DeleteMachine', 'DELETE', `/machines/${id}`, { key: sk, prefix })
    expect(deleted.status).toBe(200)
    expect(deleted.body).toEqual({ object: 'machine', id, deleted: true })
    expect((await call('GetMachine', 'GET', `/machines/${id}`, { key: sk, prefix })).status).toBe(
      404,
    )
  })
})

describe('ListMachines', () => {
  it('query, order_by, limit and offset', async () => {
    for (const name of ['alpha', 'beta', 'gamma', 'alphabet']) {
      await createMachine({ name })
      clock.advance(1)
    }
    type List = { data: Machine[]; total_count: number }
    const names = async (q: string) =>
      (await call<List>('ListMachines', 'GET', `/machines${q}`, { key: sk })).body.data.map(
        (m) => m.name,
      )
    expect(await names('')).toEqual(['alphabet', 'gamma', 'beta', 'alpha'])
    expect(await names('?order_by=name')).toEqual(['alpha', 'alphabet', 'beta', 'gamma'])
    expect(await names('?order_by=-name&limit=2&offset=1')).toEqual(['beta', 'alphabet'])
    expect(await names('?order_by=%2Bcreated_at')).toEqual(['alpha', 'beta', 'gamma', 'alphabet'])
    expect(await names('?query=ALPHA')).toEqual(['alphabet', 'alpha'])
    const beta = emulator.listMachines().find((m) => m.name === 'beta')
    expect(await names(`?query=${beta?.id}`)).toEqual(['beta'])
    for (const q of ['?limit=0', '?limit=501', '?offset=-1', '?order_by=size']) {
      expect((await call('ListMachines', 'GET', `/machines${q}`, { key: sk })).status, q).toBe(400)
    }
  })
})

describe('Machines authorization', () => {
  it('a machine key gets 403 on every Machines endpoint; no key gets 401', async () => {
    const m = await emulator.createMachine({ name: 'm' })
    const other = await emulator.createMachine({ name: 'o' })
    const cases: [string, string, string, unknown?][] = [
      ['ListMachines', 'GET', '/machines'],
      ['CreateMachine', 'POST', '/machines', { name: 'x' }],
      ['GetMachine', 'GET', `/machines/${m.id}`],
      ['UpdateMachine', 'PATCH', `/machines/${m.id}`, { name: 'y' }],
      ['DeleteMachine', 'DELETE', `/machines/${m.id}`],
      ['GetMachineSecretKey', 'GET', `/machines/${m.id}/secret_key`],
      [
        'RotateMachineSecretKey',
        'POST',
        `/machines/${m.id}/secret_key/rotate`,
        { previous_token_ttl: 0 },
      ],
      ['CreateMachineScope', 'POST', `/machines/${m.id}/scopes`, { to_machine_id: other.id }],
      ['DeleteMachineScope', 'DELETE', `/machines/${m.id}/scopes/${other.id}`],
    ]
    for (const [op, method, path, body] of cases) {
      const forbidden = await call(op, method, path, { key: m.secretKey, body })
      expect(forbidden.status, op).toBe(403)
      const anonymous = await call(op, method, path, { body })
      expect(anonymous.status, op).toBe(401)
    }
    expect(emulator.getMachine(m.id)?.name).toBe('m')
  })
})

describe('secret keys', () => {
  it('get returns the current key; rotate keeps the old one valid for previous_token_ttl seconds', async () => {
    const m = await emulator.createMachine({ name: 'm' })
    const got = await call<{ object: string; secret: string }>(
      'GetMachineSecretKey',
      'GET',
      `/machines/${m.id}/secret_key`,
      { key: sk },
    )
    expect(got.body).toEqual({ object: 'machine_secret_key', secret: m.secretKey })

    const rotated = await call<{ secret: string }>(
      'RotateMachineSecretKey',
      'POST',
      `/machines/${m.id}/secret_key/rotate`,
      {
        key: sk,
        body: { previous_token_ttl: 60 },
      },
    )
    expect(rotated.status).toBe(200)
    const fresh = rotated.body.secret
    expect(fresh).not.toBe(m.secretKey)
    const mint = (key: string) =>
      call<Token>('createM2MToken', 'POST', '/m2m_tokens', { key, body: {} })
    expect((await mint(m.secretKey)).status).toBe(201)
    expect((await mint(fresh)).status).toBe(201)
    clock.advance(60_000)
    expect((await mint(m.secretKey)).status).toBe(401)
    expect((await mint(fresh)).status).toBe(201)

    const immediate = await call<{ secret: string }>(
      'RotateMachineSecretKey',
      'POST',
      `/machines/${m.id}/secret_key/rotate`,
      {
        key: sk,
        body: { previous_token_ttl: 0 },
      },
    )
    expect((await mint(fresh)).status).toBe(401)
    expect((await mint(immediate.body.secret)).status).toBe(201)
    expect(emulator.getMachine(m.id)?.secretKey).toBe(immediate.body.secret)
  })

  it('rotate validates previous_token_ttl', async () => {
    const m = await emulator.createMachine({ name: 'm' })
    for (const body of [
      {},
      { previous_token_ttl: -1 },
      { previous_token_ttl: 28_801 },
      { previous_token_ttl: 1.5 },
      { previous_token_ttl: '5' },
    ]) {
      const res = await call(
        'RotateMachineSecretKey',
        'POST',
        `/machines/${m.id}/secret_key/rotate`,
        { key: sk, body },
      )
      expect(res.status, JSON.stringify(body)).toBe(400)
    }
  })
})

describe('scopes', () => {
  it('create and delete a scope; duplicates 409, unknown machines 404, self 400', async () => {
    const a = await emulator.createMachine({ name: 'a' })
    const b = await emulator.createMachine({ name: 'b' })
    clock.advance(7)
    const created = await call('CreateMachineScope', 'POST', `/machines/${a.id}/scopes`, {
      key: sk,
      body: { to_machine_id: b.id },
    })
    expect(created.status).toBe(200)
    expect(created.body).toEqual({
      object: 'machine_scope',
      from_machine_id: a.id,
      to_machine_id: b.id,
      created_at: clock.now(),
    })
    expect(emulator.getMachine(a.id)?.scopedMachines).toEqual([b.id])

    const dup = await call('CreateMachineScope', 'POST', `/machines/${a.id}/scopes`, {
      key: sk,
      body: { to_machine_id: b.id },
    })
    expect(dup.status).toBe(409)
    const unknownTarget = await call('CreateMachineScope', 'POST', `/machines/${a.id}/scopes`, {
      key: sk,
      body: { to_machine_id: `mch_${'x'.repeat(27)}` },
    })
    expect(unknownTarget.status).toBe(404)
    const self = await call('CreateMachineScope', 'POST', `/machines/${a.id}/scopes`, {
      key: sk,
      body: { to_machine_id: a.id },
    })
    expect(self.status).toBe(400)
    const missing = await call('CreateMachineScope', 'POST', `/machines/${a.id}/scopes`, {
      key: sk,
      body: {},
    })
    expect(missing.status).toBe(400)
    expect(errorCode(missing)).toBe('form_param_missing')

    const removed = await call('DeleteMachineScope', 'DELETE', `/machines/${a.id}/scopes/${b.id}`, {
      key: sk,
    })
    expect(removed.status).toBe(200)
    expect(removed.body).toEqual({
      object: 'machine_scope',
      from_machine_id: a.id,
      to_machine_id: b.id,
      deleted: true,
    })
    const again = await call('DeleteMachineScope', 'DELETE', `/machines/${a.id}/scopes/${b.id}`, {
      key: sk,
    })
    expect(again.status).toBe(404)
  })

  it('deleting a machine deletes its tokens and removes it from other machines’ scopes', async () => {
    const a = await emulator.createMachine({ name: 'a' })
    const b = await emulator.createMachine({ name: 'b', scopedMachines: [a.id] })
    const t = await call<Token>('createM2MToken', 'POST', '/m2m_tokens', {
      key: a.secretKey,
      body: {},
    })
    await call('DeleteMachine', 'DELETE', `/machines/${a.id}`, { key: sk })
    expect(emulator.getMachine(b.id)?.scopedMachines).toEqual([])
    const verify = await call('verifyM2MToken', 'POST', '/m2m_tokens/verify', {
      key: sk,
      body: { token: t.body.token },
    })
    expect(verify.status).toBe(404)
    expect(
      (await call('createM2MToken', 'POST', '/m2m_tokens', { key: a.secretKey, body: {} })).status,
    ).toBe(401)
  })

  it('create with scoped_machines naming an unknown machine is 400', async () => {
    const res = await createMachine({ name: 'x', scoped_machines: [`mch_${'y'.repeat(27)}`] })
    expect(res.status).toBe(400)
    expect(errorCode(res)).toBe('form_param_value_invalid')
  })
})

describe('in-process helpers', () => {
  it('validate their input and name the problem', async () => {
    await expect(emulator.createMachine({ name: '' })).rejects.toThrow(/name/)
    await expect(emulator.createMachine({ name: 'x', defaultTokenTtl: 0 })).rejects.toThrow(
      /defaultTokenTtl/,
    )
    await expect(emulator.createMachine({ name: 'x', id: 'mch_short' })).rejects.toThrow(/mch_/)
    const fixed = await emulator.createMachine({
      name: 'fixed',
      id: `mch_${'f'.repeat(27)}`,
      secretKey: 'ak_fixed',
    })
    expect(fixed).toMatchObject({ id: `mch_${'f'.repeat(27)}`, secretKey: 'ak_fixed' })
    await expect(emulator.addScope(fixed.id, `mch_${'z'.repeat(27)}`)).rejects.toThrow(/not found/)
    await expect(emulator.removeScope(fixed.id, `mch_${'z'.repeat(27)}`)).rejects.toThrow(
      /not found/,
    )
  })
})
