#!/usr/bin/env node
// Runs the compiled CLI (dist/, made by `npm run build`, which `npm ci` runs).
const { existsSync } = require('node:fs');
const path = require('node:path');

const main = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
if (!existsSync(main)) {
  console.error('ferry: not built yet (no dist/); run `npm run build` in the checkout');
  process.exit(1);
}
// A reader that stops early (`| head`) ends the output, not with a stack trace.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});
const { exitWhenFlushed } = require('../dist/cli/exit.js');
require(main).main(process.argv).then(exitWhenFlushed);
