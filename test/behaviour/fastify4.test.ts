import { runBehaviourTable } from './run.js'
import { fastify4Target } from './targets/fastify.js'

runBehaviourTable(fastify4Target)
