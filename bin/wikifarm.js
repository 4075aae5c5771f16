#!/usr/bin/env node
// The `wikifarm` command. The farm is written in TypeScript and runs through tsx's loader,
// registered here before anything else is imported.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('../core/main.ts')
await main()
