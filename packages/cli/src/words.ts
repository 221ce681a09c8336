/**
 * ` 'word'` for a word that looks like a command, else nothing: what was typed in a command's
 * place may be a token or a key pasted in the wrong spot, and errors never show those.
 *
 * @example
 * quoteWord('tokenz') // " 'tokenz'"
 */
export function quoteWord(word: string): string {
  return /^[a-z][a-z-]{0,23}$/.test(word) ? ` '${word}'` : ''
}
