#!/usr/bin/env node
/** `node lib/train.js …` (= `ctclip train …`): the entry point. The command itself is lib/commands/train.ts. */
import { runAsMain } from './commands/common';
import { run } from './commands/train';

export * from './commands/train';

if (require.main === module) runAsMain('ctclip train', run);
