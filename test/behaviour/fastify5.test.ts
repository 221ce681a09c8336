import { runBehaviourTable } from './run.js'
import { fastify5Target } from './targets/fastify.js'

runBehaviourTable(fastify5Target)
