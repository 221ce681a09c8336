import { packageConfig } from '../../tsup.base'

// The transport is chosen at runtime through package.json "imports" conditions (undici on Node,
// fetch on Bun and workerd), so "#transport" stays external and each transport is its own entry,
// emitted at dist/transport-*.{js,cjs} where the imports map points.
export default packageConfig({
  entry: {
    index: 'src/index.ts',
    'transport-node': 'src/client/transport-node.ts',
    'transport-fetch': 'src/client/transport-fetch.ts',
  },
  external: ['#transport'],
})
