import { packageConfig } from '../../tsup.base'

// The transport is chosen at runtime through package.json "imports" conditions
// (undici on Node, fetch on Bun and workerd), so "#transport" stays external.
export default packageConfig({
  entry: ['src/index.ts', 'src/client/transport-node.ts', 'src/client/transport-fetch.ts'],
  external: ['#transport'],
})
