// `npm start`: placeholder until the demo exists; never fails.
console.log('m2m-guard: the demo is not built yet. Run `npm test` to run the suites.')
