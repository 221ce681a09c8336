import { runBehaviourTable } from './run.js'
import { express5Target } from './targets/express.js'

runBehaviourTable(express5Target)
