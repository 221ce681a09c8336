// `express5` is an npm alias of express@5, whose types are @types/express (installed as is).
declare module 'express5' {
  import express = require('express')
  export = express
}
