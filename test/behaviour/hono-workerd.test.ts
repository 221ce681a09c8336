import { runBehaviourTable } from './run.js'
import { honoWorkerdTarget } from './targets/hono.js'

runBehaviourTable(honoWorkerdTarget)
