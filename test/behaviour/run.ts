/**
 * Runs the behaviour table (cases.ts) against one target: starts the real emulator, creates the
 * machines, boots the target's app, then plays every case and compares each answer exactly.
 */
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { createM2MClient, type M2MClient, type M2MTokenWithSecret } from '@m2m-guard/core'
import { type Emulator, startEmulator } from '@m2m-guard/emulator'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TableRequest, TableResponse } from '../support/http.js'
import {
  CALLER2_ID,
  type Capability,
  cases,
  type Expected,
  type Send,
  type Step,
  type TokenRecipe,
} from './cases.js'
import type { BehaviourEnv } from './routes.js'

/** An app built by one framework, serving the routes of routes.ts. */
export interface RunningTarget {
  send(req: TableRequest): Promise<TableResponse>
  close(): Promise<void>
}

/** A framework under test: how to boot the routes of routes.ts in it. */
export interface Target {
  name: string
  start(env: BehaviourEnv): Promise<RunningTarget>
  /** What its transport cannot deliver to the app, and why; those rows are skipped. */
  lacks?: Partial<Record<Capability, string>>
}

interface Minted {
  token: string
  id: string | undefined
  identity: unknown
}

function identityOf(created: M2MTokenWithSecret): unknown {
  return {
    tokenType: 'm2m_token',
    format: 'opaque',
    id: created.id,
    subject: created.subject,
    scopes: created.scopes,
    claims: created.claims,
    expiration: created.expiration,
  }
}

const EXPIRED_LIFETIME_MS = 1000

/**
 * Declares a `describe` block running every case of the table against `target`.
 *
 * @example
 * runBehaviourTable(expressTarget('express 5', express5))
 */
export function runBehaviourTable(target: Target): void {
  describe(`behaviour table: ${target.name}`, () => {
    let emulator: Emulator
    let app: RunningTarget
    let admin: M2MClient
    const minters = new Map<'caller' | 'caller2' | 'outsider', M2MClient>()
    let caller2Id = ''
    // Tokens for `expired` rows are minted up front, so their lifetime runs out while other rows run.
    const expiredTokens: Array<{ minted: Minted; at: number }> = []

    beforeAll(async () => {
      emulator = await startEmulator({ port: 0 })
      const receiver = await emulator.createMachine({ name: 'receiver' })
      const caller = await emulator.createMachine({ name: 'caller', scopedMachines: [receiver.id] })
      const caller2 = await emulator.createMachine({
        name: 'caller2',
        scopedMachines: [receiver.id],
      })
      const outsider = await emulator.createMachine({ name: 'outsider' })
      caller2Id = caller2.id
      const client = (secretKey: string) =>
        createM2MClient({ secretKey, apiUrl: emulator.url, retry: false })
      admin = client(emulator.secretKey)
      minters.set('caller', client(caller.secretKey))
      minters.set('caller2', client(caller2.secretKey))
      minters.set('outsider', client(outsider.secretKey))
      app = await target.start({
        apiUrl: emulator.url,
        instanceKey: emulator.secretKey,
        receiverId: receiver.id,
        callerId: caller.id,
      })
      for (const c of cases) {
        if (c.token?.kind === 'expired') {
          const created = await minters.get('caller')!.createToken({
            secondsUntilExpiration: EXPIRED_LIFETIME_MS / 1000,
          })
          expiredTokens.push({ minted: mintedOf(created), at: Date.now() })
        }
      }
    })

    afterAll(async () => {
      await app?.close()
      await emulator?.close()
    })

    function mintedOf(created: M2MTokenWithSecret): Minted {
      return { token: created.token, id: created.id, identity: identityOf(created) }
    }

    async function mint(recipe: TokenRecipe): Promise<Minted> {
      switch (recipe.kind) {
        case 'caller':
          return mintedOf(
            await minters.get('caller')!.createToken({
              secondsUntilExpiration: recipe.seconds ?? 600,
              claims: recipe.claims ?? null,
            }),
          )
        case 'caller2':
        case 'outsider':
          return mintedOf(
            await minters.get(recipe.kind)!.createToken({ secondsUntilExpiration: 600 }),
          )
        case 'revoked': {
          const created = await minters.get('caller')!.createToken({ secondsUntilExpiration: 600 })
          await admin.revokeToken({ m2mTokenId: created.id, revocationReason: 'test' })
          return mintedOf(created)
        }
        case 'expired': {
          const next = expiredTokens.shift()
          if (!next) throw new Error('no pre-minted expired token left')
          const left = next.at + EXPIRED_LIFETIME_MS + 150 - Date.now()
          if (left > 0) await sleep(left)
          return next.minted
        }
        case 'unknown':
          return { token: `mt_${randomBytes(16).toString('hex')}`, id: undefined, identity: null }
        case 'literal':
          return { token: recipe.value, id: undefined, identity: null }
      }
    }

    function verifyCalls(): number {
      return emulator.stats().byOperation['verifyM2MToken'] ?? 0
    }

    function requestOf(send: Send, token: string): TableRequest {
      const headers: Array<[string, string]> = [...(send.headers ?? [])]
      for (const value of send.authorization ?? []) {
        headers.push(['Authorization', value.replaceAll('{token}', token)])
      }
      return { method: send.method ?? 'GET', path: `/m2m/${send.route}`, headers }
    }

    function expectedAnswer(expected: Expected, minted: Minted | undefined) {
      const body =
        expected.body === 'identity'
          ? { m2m: minted?.identity }
          : expected.body === 'anonymous'
            ? { m2m: null }
            : expected.body && {
                ...expected.body,
                error_description: expected.body.error_description.replace(CALLER2_ID, caller2Id),
              }
      const www = expected.wwwAuthenticate?.replace(CALLER2_ID, caller2Id) ?? null
      // Errors must never be cached by a proxy: every rejection carries no-store.
      const headers =
        expected.status >= 400
          ? { 'cache-control': 'no-store', ...expected.headers }
          : { ...expected.headers }
      return {
        status: expected.status,
        wwwAuthenticate: www,
        retryAfter: expected.retryAfter,
        body,
        headers,
      }
    }

    function actualAnswer(res: TableResponse, expected: Expected) {
      const wanted =
        expected.status >= 400
          ? { 'cache-control': '', ...expected.headers }
          : { ...expected.headers }
      const headers: Record<string, string | null> = {}
      for (const name of Object.keys(wanted)) headers[name] = res.headers[name] ?? null
      return {
        status: res.status,
        wwwAuthenticate: res.headers['www-authenticate'] ?? null,
        retryAfter: res.headers['retry-after'] ?? null,
        body: res.body,
        headers,
      }
    }

    for (const c of cases) {
      const missing = c.needs === undefined ? undefined : target.lacks?.[c.needs]
      const name = missing === undefined ? c.name : `${c.name} (skipped: ${missing})`
      it.skipIf(missing !== undefined)(name, async () => {
        const minted = c.token ? await mint(c.token) : undefined
        const token = minted?.token ?? ''
        try {
          await playSteps(c.steps, minted, token)
        } finally {
          // A failed row must not leave an outage behind for the next one.
          emulator.clearFaults()
        }
      })
    }

    async function playSteps(
      steps: Step[],
      minted: Minted | undefined,
      token: string,
    ): Promise<void> {
      for (const step of steps) {
        if ('wait' in step) await sleep(step.wait)
        else if ('faults' in step) emulator.setFaults(step.faults)
        else if ('clearFaults' in step) emulator.clearFaults()
        else if ('revokeUpstream' in step) {
          await admin.revokeToken({ m2mTokenId: minted!.id!, revocationReason: 'test' })
        } else if ('revokeThroughApp' in step) {
          const res = await app.send({
            method: 'POST',
            path: `/admin/revoke/${minted!.id}`,
            headers: [],
          })
          expect(res.status, 'POST /admin/revoke/:id').toBe(204)
        } else {
          const before = verifyCalls()
          const req = requestOf(step.send, token)
          const responses = await Promise.all(
            Array.from({ length: step.send.concurrently ?? 1 }, () => app.send(req)),
          )
          const want = expectedAnswer(step.expect, minted)
          for (const res of responses) {
            expect(actualAnswer(res, step.expect)).toEqual(want)
            // The token must never be echoed back, whatever the answer.
            if (token.length > 8) expect(JSON.stringify(res)).not.toContain(token)
          }
          expect(verifyCalls() - before, 'verify calls upstream').toBe(step.expect.upstreamCalls)
        }
      }
    }
  })
}
