export { startWorld, type World } from '../../../test/support/world.js'
