/**
 * The trainer (`lib/train.js`) as a launcher worker for test/integration/launch-train.test.ts, with a fault that
 * applies to the FIRST attempt only: `LT_FIRST_ATTEMPT_FAULT=RANK:SPEC` sets CTCLIP_TEST_FAULT=SPEC (e.g.
 * `1:kill-after-step=5`) in the worker of that global rank while TORCHELASTIC_RESTART_COUNT is 0, and removes it
 * everywhere else, so the restarted workers run clean.
 */
import { runAsMain } from '../../lib/commands/common';

const spec = process.env.LT_FIRST_ATTEMPT_FAULT;
if (spec !== undefined) {
  const m = /^(\d+):(.+)$/.exec(spec);
  if (!m) throw new Error(`LT_FIRST_ATTEMPT_FAULT: expected RANK:SPEC, got '${spec}'`);
  if ((process.env.TORCHELASTIC_RESTART_COUNT ?? '0') === '0' && process.env.RANK === m[1])
    process.env.CTCLIP_TEST_FAULT = m[2];
  else delete process.env.CTCLIP_TEST_FAULT;
}
// loaded after the environment is settled (lib/train reads CTCLIP_TEST_FAULT when it runs)
const { run } = require('../../lib/commands/train') as typeof import('../../lib/commands/train');
runAsMain('ctclip train', run);
