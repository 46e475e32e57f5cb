/**
 * torchrun's agent store, when it is not a TCPStore at all: a service on MASTER_PORT that accepts connections and
 * answers nothing (another program on the port) makes every rank fail within the probe time (15 s), naming the
 * address and what to check, instead of hanging until distributed.timeout_minutes. The two real protocols are
 * covered by test/native/dist.test.ts (this build's own TCPStore server) and test/world/torchrun.test.ts (torch
 * 2.x's torchrun).
 */
import { expect } from 'chai';
import * as net from 'net';
import { freePort, killAll, startRanks, taggedJson, type RankRun } from '../helpers/dist';
import { requireAddon } from '../helpers/native';
import * as path from 'path';

const CHILD = path.join(__dirname, '..', 'helpers', 'dist-child.js');

describe("native: torchrun's agent store that is not a TCPStore", function () {
  this.timeout(90_000);
  let runs: RankRun[] = [];
  let server: net.Server | null = null;
  const sockets: net.Socket[] = [];

  before(function () {
    requireAddon(this);
  });
  afterEach(() => {
    killAll(runs);
    for (const s of sockets) s.destroy();
    server?.close();
  });

  it('a silent service on MASTER_PORT: DIST_TIMEOUT within seconds, naming the address', async function () {
    const port = await freePort();
    server = net.createServer((s) => sockets.push(s)); // accepts, reads, never answers
    await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
    runs = startRanks([CHILD], 2, port, () => ({
      TORCHELASTIC_USE_AGENT_STORE: 'True',
      DIST_TIMEOUT_MS: String(30 * 60_000), // the collectives' timeout is not what bounds this wait
    }));
    const done = await Promise.all(runs.map((r) => r.done));
    for (const [i, r] of runs.entries()) {
      expect(done[i].code, r.stdout + r.stderr).to.equal(1);
      const err = taggedJson<{ code: string; message: string }>(r.stdout, 'ERROR');
      expect(err, r.stdout + r.stderr).to.not.equal(null);
      expect(err!.code).to.equal('DIST_TIMEOUT');
      expect(err!.message).to.match(
        new RegExp(
          `^rank ${r.rank}/2: the service at 127\\.0\\.0\\.1:${port} \\(MASTER_PORT, torchrun's agent store\\) answered no TCPStore request within 15 s`,
        ),
      );
      // 15 s of probing plus loading the addon on a busy machine; far below the 30 min store timeout
      expect(done[i].ms).to.be.below(45_000);
    }
  });
});
