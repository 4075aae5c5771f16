#!/usr/bin/env node
// The `wikifarm` command: runs the compiled farm in dist/ (`npm run build`, which `npm ci` and
// `npm install` run through `prepare`). No TypeScript loader at run time.
import { main } from '../dist/core/boot/main.js'

await main()
