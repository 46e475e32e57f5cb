/**
 * c10d collectives over real processes on 127.0.0.1 (Gloo): results, torchrun's rank-0 store and agent store,
 * and a rank that stops answering (stuck or dead) failing the others within the timeout, naming it.
 */
import { expect } from 'chai';
import * as path from 'path';
import { distEnvFrom, firstSlurmHost } from '../../lib/dist/env';
import { loadAddon } from '../../lib/native';
import { requireAddon } from '../helpers/native';
import { freePort, killAll, startRanks, taggedJson, type RankRun } from '../helpers/dist';

const CHILD = path.join(__dirname, '..', 'helpers', 'dist-child.js');

interface CollectivesResult {
  rank: number;
  worldSize: number;
  env: { useAgentStore: boolean; restartCount: number; source: string };
  allReduce: number[];
  allGather: { shape: number[]; data: number[] };
  broadcast: number[];
  gatherRows: { counts: number[]; data: number[] };
}

async function finish(runs: RankRun[]): Promise<void> {
  await Promise.all(runs.map((r) => r.done));
}

describe('native: c10d process group (Gloo, loopback)', function () {
  this.timeout(120000);
  let runs: RankRun[] = [];

  before(function () {
    requireAddon(this);
    if (!loadAddon().distBackends().gloo) {
      if (process.env.CI === 'true') throw new Error('CI builds must have c10d Gloo');
      this.skip();
    }
  });
  afterEach(() => killAll(runs));

  function checkCollectives(results: CollectivesResult[], W: number): void {
    for (const res of results) {
      // Σ_r (r+1), Σ 10(r+1), Σ −r
      const s = (W * (W + 1)) / 2;
      expect(res.allReduce).to.deep.equal([s, 10 * s, -((W - 1) * W) / 2]);
      expect(res.allGather.shape).to.deep.equal([W, 2]);
      expect(res.allGather.data).to.deep.equal(Array.from({ length: W }, (_, r) => [r, r + 0.5]).flat());
      expect(res.broadcast).to.deep.equal([(W - 1) * 7, (W - 1) * 7 + 1]);
      expect(res.gatherRows.counts).to.deep.equal(Array.from({ length: W }, (_, r) => r + 1));
      const rows = Array.from({ length: W }, (_, r) => Array.from({ length: (r + 1) * 2 }, (_, i) => 100 * r + i)).flat();
      expect(res.gatherRows.data).to.deep.equal(rows);
    }
  }

  it('all-reduce, all-gather, broadcast, barrier and uneven row gathering across 3 ranks (rank 0 hosts the store)', async function () {
    const port = await freePort();
    runs = startRanks([CHILD], 3, port, () => ({ DIST_SCENARIO: 'collectives' }));
    await finish(runs);
    const results = runs.map((r) => {
      expect(r.child.exitCode, `rank ${r.rank}: ${r.stdout}${r.stderr}`).to.equal(0);
      return taggedJson<CollectivesResult>(r.stdout, 'RESULT')!;
    });
    expect(results.map((r) => r.rank)).to.deep.equal([0, 1, 2]);
    expect(results[0].env.useAgentStore).to.equal(false);
    checkCollectives(results, 3);
  });

  it("follows torchrun's agent-store rules: every rank a client under /worker/attempt_<restart>", async function () {
    const port = await freePort();
    // The test process plays torchrun's agent: it hosts the store; no rank may host one (the port is taken).
    const store = loadAddon().distStoreServer(port);
    try {
      runs = startRanks([CHILD], 2, port, () => ({ DIST_SCENARIO: 'collectives', TORCHELASTIC_USE_AGENT_STORE: 'True', TORCHELASTIC_RESTART_COUNT: '3' }));
      await finish(runs);
      const results = runs.map((r) => {
        expect(r.child.exitCode, `rank ${r.rank}: ${r.stdout}${r.stderr}`).to.equal(0);
        return taggedJson<CollectivesResult>(r.stdout, 'RESULT')!;
      });
      expect(results[0].env.useAgentStore).to.equal(true);
      expect(results[1].env.restartCount).to.equal(3);
      checkCollectives(results, 2);
    } finally {
      store.close();
    }
  });

  for (const scenario of ['stuck', 'dead'] as const) {
    it(`a ${scenario} rank makes the others fail within the timeout, naming it (${scenario === 'stuck' ? 'SIGSTOP' : 'SIGKILL'})`, async function () {
      const port = await freePort();
      const timeoutMs = 4000;
      runs = startRanks([CHILD], 3, port, () => ({ DIST_SCENARIO: scenario, DIST_TIMEOUT_MS: String(timeoutMs) }));
      const survivors = await Promise.all(runs.slice(0, 2).map((r) => r.done));
      killAll(runs);
      const codes: string[] = [];
      for (const [i, s] of survivors.entries()) {
        const r = runs[i];
        expect(s.code, `rank ${i}: ${r.stdout}${r.stderr}`).to.equal(1);
        const err = taggedJson<{ code: string; message: string }>(r.stdout, 'ERROR')!;
        expect(err, r.stdout).to.not.equal(null);
        expect(err.code).to.match(/^DIST_(TIMEOUT|ERROR)$/);
        codes.push(err.code);
        expect(err.message).to.include(`rank ${i}/3`);
        expect(err.message, err.message).to.match(/rank 2 \((silent for|never joined)/);
        // Well within the timeout plus the heartbeat's staleness window; never a hang.
        expect(s.ms).to.be.below(timeoutMs + 30000);
      }
      // A stuck peer is a timeout for whoever notices first (the others may then see that rank leave).
      if (scenario === 'stuck') expect(codes).to.include('DIST_TIMEOUT');
    });
  }
});

describe('dist env: torchrun and SLURM variables', function () {
  it('reads the torchrun environment, with LOCAL_* defaults', function () {
    const e = distEnvFrom({ RANK: '3', WORLD_SIZE: '4', MASTER_ADDR: 'node1', MASTER_PORT: '1234', TORCHELASTIC_USE_AGENT_STORE: 'True', TORCHELASTIC_RESTART_COUNT: '2' });
    expect(e).to.deep.include({ rank: 3, worldSize: 4, localRank: 3, localWorldSize: 4, masterAddr: 'node1', masterPort: 1234, useAgentStore: true, restartCount: 2, source: 'torchrun' });
  });
  it('falls back to SLURM variables when RANK is absent, master from the node list', function () {
    const e = distEnvFrom({ SLURM_PROCID: '5', SLURM_NTASKS: '8', SLURM_LOCALID: '1', SLURM_NTASKS_PER_NODE: '4(x2)', SLURM_JOB_NODELIST: 'gpu[07-08]' });
    expect(e).to.deep.include({ rank: 5, worldSize: 8, localRank: 1, localWorldSize: 4, masterAddr: 'gpu07', masterPort: 29500, source: 'slurm' });
    expect(firstSlurmHost('a1,b2')).to.equal('a1');
    expect(firstSlurmHost('rack-[3-5,9],x')).to.equal('rack-3');
  });
  it('is a single process without either, and names bad variables', function () {
    expect(distEnvFrom({}).worldSize).to.equal(1);
    expect(() => distEnvFrom({ RANK: '2', WORLD_SIZE: '2', MASTER_ADDR: 'a', MASTER_PORT: '1' })).to.throw(/RANK=2 must be smaller than WORLD_SIZE=2/);
    expect(() => distEnvFrom({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '1' })).to.throw(/MASTER_ADDR/);
    expect(() => distEnvFrom({ RANK: '0', WORLD_SIZE: 'x' })).to.throw(/WORLD_SIZE='x'/);
    expect(() => distEnvFrom({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'a', MASTER_PORT: '70000' })).to.throw(/MASTER_PORT='70000'/);
  });
});
