import { runBehaviourTable } from './run.js'
import { honoBunTarget } from './targets/hono-bun.js'

runBehaviourTable(honoBunTarget)
