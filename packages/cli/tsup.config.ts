import { packageConfig } from '../../tsup.base'

// index: the programmatic API (runCli). cli: the process entry bin/m2m-guard.mjs imports.
export default packageConfig({ entry: ['src/index.ts', 'src/cli.ts'] })
