#!/usr/bin/env node
/** `node lib/inference.js …` (= `ctclip infer …`): the entry point. The command itself is lib/commands/infer.ts. */
import { runAsMain } from './commands/common';
import { run } from './commands/infer';

export * from './commands/infer';

if (require.main === module) runAsMain('ctclip infer', run);
