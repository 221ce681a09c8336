/**
 * Human-readable output: aligned columns, ISO dates. Scripts use `--json` instead, so this text
 * may change between versions.
 */
import type { M2MToken, M2MTokenWithSecret } from '@m2m-guard/core'

// Control characters (C0, DEL, C1: newlines, ESC, CSI…), line and paragraph separators, and the
// bidirectional controls that reorder what follows: in text from a server, each could forge an
// output line or steer the terminal.
const UNPRINTABLE = /[\p{Cc}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu

function escapeChar(char: string): string {
  return `\\u${(char.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`
}

/**
 * The text with every character that could forge a line or steer the terminal (controls, line
 * separators, bidi overrides) shown as a `\uXXXX` escape. Applied to anything a server sent
 * before it is printed as text.
 *
 * @example
 * printable('rotated\n\x1b[2J') // 'rotated\\u000a\\u001b[2J'
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, escapeChar)
}

/**
 * Left-aligns rows of cells into columns two spaces apart (no trailing spaces). Cells go through
 * `printable`, so a value cannot break the layout or reach the terminal as a control.
 *
 * @example
 * table([['ID', 'NAME'], ['mch_1', 'caller']]) // 'ID     NAME\nmch_1  caller\n'
 */
export function table(rows: readonly (readonly string[])[], indent = ''): string {
  const cells = rows.map((row) => row.map(printable))
  const widths: number[] = []
  for (const row of cells) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length)
    })
  }
  return cells
    .map(
      (row) =>
        indent +
        row
          .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
          .join('  ')
          .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('')
}

/**
 * A timestamp in ms as ISO 8601 (UTC), or `fallback` when absent.
 *
 * @example
 * isoDate(0) // '1970-01-01T00:00:00.000Z'
 */
export function isoDate(ms: number | null, fallback = '-'): string {
  return ms === null ? fallback : new Date(ms).toISOString()
}

function yesNo(value: boolean): string {
  return value ? 'yes' : 'no'
}

function list(values: readonly string[]): string {
  return values.length === 0 ? '-' : values.join(', ')
}

/**
 * One token as `field  value` lines. The secret is included only for a token the user just
 * created (it is returned once, and asking to create one is asking to see it).
 *
 * @example
 * process.stdout.write(formatToken(await client.verifyToken({ token })))
 */
export function formatToken(token: M2MToken | M2MTokenWithSecret): string {
  const rows: string[][] = []
  if ('token' in token) rows.push(['token', token.token])
  rows.push(
    ['id', token.id],
    ['subject', token.subject],
    ['scopes', list(token.scopes)],
    ['claims', token.claims === null ? '-' : JSON.stringify(token.claims)],
    ['revoked', yesNo(token.revoked)],
    ['revocation reason', token.revocationReason ?? '-'],
    ['expired', yesNo(token.expired)],
    ['expiration', isoDate(token.expiration, 'never')],
    ['last used', isoDate(token.lastUsedAt)],
    ['created', isoDate(token.createdAt)],
    ['updated', isoDate(token.updatedAt)],
  )
  return table(rows)
}

/**
 * Tokens as a table with a header row; claims are left out (too wide), `--json` has them.
 *
 * @example
 * process.stdout.write(formatTokenTable(page.m2mTokens))
 */
export function formatTokenTable(tokens: readonly M2MToken[]): string {
  const header = [
    'ID',
    'SUBJECT',
    'SCOPES',
    'REVOKED',
    'EXPIRED',
    'EXPIRATION',
    'LAST USED',
    'CREATED',
  ]
  const rows = tokens.map((t) => [
    t.id,
    t.subject,
    list(t.scopes),
    yesNo(t.revoked),
    yesNo(t.expired),
    isoDate(t.expiration, 'never'),
    isoDate(t.lastUsedAt),
    isoDate(t.createdAt),
  ])
  return table([header, ...rows])
}

/**
 * Pretty JSON with a final newline, for `--json`. JSON.stringify escapes C0 controls inside
 * strings but leaves DEL, C1 controls (U+009B is CSI), line separators and bidi overrides raw;
 * those are escaped too (`\uXXXX`), so the text is safe on a terminal and parses to the same value.
 *
 * @example
 * io.stdout.write(json({ ok: true }))
 */
export function json(value: unknown): string {
  // Raw C0 characters in the output are only the indentation's newlines: keep those.
  const text = JSON.stringify(value, null, 2).replace(UNPRINTABLE, (c) =>
    c === '\n' ? c : escapeChar(c),
  )
  return `${text}\n`
}
