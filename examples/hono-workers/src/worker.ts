/** The Worker entry named in wrangler.toml. */
import { createApp } from './app.js'

export default createApp()
