#!/usr/bin/env node
// Runs the TypeScript CLI directly through tsx, so there is no build step to forget.
require('tsx/cjs');
const { exitWhenFlushed } = require('../cli/exit.ts');
require('../cli/main.ts').main(process.argv).then(exitWhenFlushed);
