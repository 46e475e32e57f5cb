#!/usr/bin/env node
/** `node lib/launch.js …` (= `ctclip launch …`): the entry point. The command itself is lib/commands/launch.ts. */
import { runAsMain } from './commands/common';
import { run } from './commands/launch';

export * from './commands/launch';

if (require.main === module) runAsMain('ctclip launch', run);
