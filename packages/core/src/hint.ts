/**
 * "Did you mean" hints for misspelt option names, shared by the client's and the verifier's
 * option checks: a misspelt `machineId` or `apiUrl` must fail loudly and point at the fix.
 */

/**
 * Lower case, without `_` and `-`: `machine_id`, `MachineID` and `machineId` are one key.
 *
 * @internal
 * @example
 * normalize('machine_ID') // 'machineid'
 */
export function normalize(key: string): string {
  return key.toLowerCase().replace(/[_-]/g, '')
}

/**
 * Optimal string alignment distance (Levenshtein plus adjacent transpositions).
 *
 * @internal
 * @example
 * editDistance('tlt', 'ttl') // 1
 */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = []
  for (let i = 0; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j)
        continue
      }
      const up = rows[i - 1] as number[]
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(
        (up[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (up[j - 1] as number) + cost,
      )
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, ((rows[i - 2] as number[])[j - 2] as number) + 1)
      }
      row.push(best)
    }
    rows.push(row)
  }
  return (rows[a.length] as number[])[b.length] as number
}

/**
 * How close an unknown key is to a known one, lower is closer; `undefined` when unrelated.
 * Same key in another case or with `_` (0), a typo or two (the edit distance), one name inside
 * the other (`ttl` → `ttlMs`, `threshold` → `failureThreshold`) or a shared stem (3).
 *
 * @internal
 * @example
 * closeness('ttl', 'ttlMs') // 3
 */
export function closeness(unknown: string, known: string): number | undefined {
  const a = normalize(unknown)
  const b = normalize(known)
  if (a === b) return 0
  const distance = editDistance(a, b)
  const allowed = a.length >= 5 ? 2 : a.length >= 3 ? 1 : 0
  if (distance <= allowed) return distance
  if (Math.min(a.length, b.length) >= 3 && (a.includes(b) || b.includes(a))) return 3
  // A shared stem with a different ending: `maxEntry` → `maxEntries`.
  let prefix = 0
  while (prefix < a.length && a[prefix] === b[prefix]) prefix++
  if (prefix >= 4 && prefix >= Math.min(a.length, b.length) - 2) return 3
  return undefined
}

/**
 * The known key an unknown one most likely meant, for a "did you mean" hint; `undefined` when
 * none is close. Shared with the client's own option check.
 *
 * @internal
 * @example
 * nearestKey('apiURL', ['secretKey', 'apiUrl']) // 'apiUrl'
 */
export function nearestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; rank: number } | undefined
  for (const candidate of known) {
    const score = closeness(key, candidate)
    if (score === undefined) continue
    const rank = score * 1000 + editDistance(normalize(key), normalize(candidate))
    if (best === undefined || rank < best.rank) best = { key: candidate, rank }
  }
  return best?.key
}
