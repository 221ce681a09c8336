import { runBehaviourTable } from './run.js'
import { honoNodeTarget } from './targets/hono.js'

runBehaviourTable(honoNodeTarget)
