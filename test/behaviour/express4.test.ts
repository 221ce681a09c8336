import { runBehaviourTable } from './run.js'
import { express4Target } from './targets/express.js'

runBehaviourTable(express4Target)
