#!/usr/bin/env node
// Runs the TypeScript CLI directly through tsx, so there is no build step to forget.
require('tsx/cjs');
require('../cli/main.ts')
  .main(process.argv)
  .then((code) => process.exit(code));
