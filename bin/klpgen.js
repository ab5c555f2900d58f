#!/usr/bin/env -S node --max-semi-space-size=16
// Thin launcher: the CLI is compiled from src/cli.ts to dist/src/cli.js.
import { main } from '../dist/src/cli.js';
main(process.argv).then((code) => {
  process.exitCode = code;
});
