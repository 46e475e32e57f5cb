/**
 * c10d collectives over real processes on 127.0.0.1 (Gloo): results, torchrun's rank-0 store and agent store,
 * and a rank that stops answering (stuck or dead) failing the others within the timeout, naming it.
 */
import { expect } from 'chai';
import { promises as dns } from 'dns';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { distEnvFrom, firstSlurmHost } from '../../lib/dist/env';
import { loadAddon } from '../../lib/native';
import { requireGloo } from '../helpers/native';
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

/** Resolves when a rank prints a line matching `re` (rejects if it exits first). */
function stdoutLine(run: RankRun, re: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => run.stdout.split('\n').some((l) => re.test(l));
    if (check()) return resolve();
    run.child.stdout!.on('data', () => check() && resolve());
    void run.done.then(() =>
      check()
        ? resolve()
        : reject(new Error(`rank ${run.rank} exited before printing ${re}:\n${run.stdout}${run.stderr}`)),
    );
  });
}

/** IPv4/IPv6 sockets in LISTEN state in this network namespace (/proc/net/tcp, tcp6), with their inodes. */
function listeningSockets(): Array<{ address: string; port: number; inode: string }> {
  const out: Array<{ address: string; port: number; inode: string }> = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(file)) continue;
    for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue; // 0A = LISTEN
      const [hex, portHex] = f[1].split(':');
      // 32-bit words in host (little-endian) byte order
      const bytes: number[] = [];
      for (let i = 0; i < hex.length; i += 8) {
        const w = parseInt(hex.slice(i, i + 8), 16);
        bytes.push(w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, (w >>> 24) & 0xff);
      }
      let address: string;
      if (bytes.length === 4) address = bytes.join('.');
      else if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff)
        address = bytes.slice(12).join('.');
      else if (bytes.every((b) => b === 0)) address = '::';
      else
        address = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i] << 8) | bytes[2 * i + 1]).toString(16)).join(':');
      out.push({ address, port: parseInt(portHex, 16), inode: f[9] });
    }
  }
  return out;
}

/** The inodes of the sockets process `pid` has open. */
function socketInodes(pid: number): string[] {
  const dir = `/proc/${pid}/fd`;
  const out: string[] = [];
  for (const fd of fs.readdirSync(dir)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(path.join(dir, fd)));
      if (m) out.push(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

async function finish(runs: RankRun[]): Promise<void> {
  await Promise.all(runs.map((r) => r.done));
}

describe('native: c10d process group (Gloo, loopback)', function () {
  this.timeout(120000);
  let runs: RankRun[] = [];

  before(function () {
    requireGloo(this);
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
      const rows = Array.from({ length: W }, (_, r) =>
        Array.from({ length: (r + 1) * 2 }, (_, i) => 100 * r + i),
      ).flat();
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
      runs = startRanks([CHILD], 2, port, () => ({
        DIST_SCENARIO: 'collectives',
        TORCHELASTIC_USE_AGENT_STORE: 'True',
        TORCHELASTIC_RESTART_COUNT: '3',
      }));
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

  it('rank 0 hosts the store on MASTER_ADDR only (127.0.0.1:PORT, not *:PORT); nothing of a loopback job listens on a wildcard address', async function () {
    if (process.platform !== 'linux') this.skip(); // reads /proc/net/tcp{,6}
    const port = await freePort();
    const release = path.join(os.tmpdir(), `ctclip-dist-release-${process.pid}-${port}`);
    try {
      runs = startRanks([CHILD], 2, port, () => ({ DIST_SCENARIO: 'listen', DIST_RELEASE_FILE: release }));
      await Promise.all(runs.map((r) => stdoutLine(r, /^READY /)));
      const listening = listeningSockets();
      const jobInodes = new Set(runs.flatMap((r) => socketInodes(r.child.pid as number)));
      fs.writeFileSync(release, '');
      await finish(runs);
      const results = runs.map((r) => {
        expect(r.child.exitCode, `rank ${r.rank}: ${r.stdout}${r.stderr}`).to.equal(0);
        return taggedJson<{ rank: number; storeAddress: string | null }>(r.stdout, 'RESULT')!;
      });
      // the kernel's view: the store's port is bound to 127.0.0.1 only
      expect(
        listening.filter((l) => l.port === port).map((l) => l.address),
        JSON.stringify(listening.filter((l) => l.port === port)),
      ).to.deep.equal(['127.0.0.1']);
      // and every listening socket of the two ranks (the store; Gloo's, while it has one) is on loopback
      const ours = listening.filter((l) => jobInodes.has(l.inode));
      expect(
        ours.map((l) => l.port),
        JSON.stringify(listening),
      ).to.include(port);
      for (const l of ours) expect(l.address, JSON.stringify(l)).to.equal('127.0.0.1');
      expect(
        results.map((x) => x.storeAddress),
        'reported by rank 0 only',
      ).to.deep.equal([`127.0.0.1:${port}`, null]);
    } finally {
      fs.rmSync(release, { force: true });
    }
  });

  it('a multi-node job whose MASTER_ADDR is a host name: the store listens on every interface; on one node it binds that name', async function () {
    if (process.platform !== 'linux') this.skip();
    const host = os.hostname();
    try {
      await dns.lookup(host);
    } catch {
      this.skip(); // this machine cannot resolve its own name
    }
    for (const [localWorldSize, expectWildcard] of [
      [1, true], // as if each rank were on its own node
      [2, false],
    ] as const) {
      const port = await freePort();
      const release = path.join(os.tmpdir(), `ctclip-dist-release-${process.pid}-${port}`);
      try {
        runs = startRanks([CHILD], 2, port, (rank) => ({
          DIST_SCENARIO: 'listen',
          DIST_RELEASE_FILE: release,
          MASTER_ADDR: host,
          LOCAL_WORLD_SIZE: String(localWorldSize),
          LOCAL_RANK: String(localWorldSize === 1 ? 0 : rank),
        }));
        await Promise.all(runs.map((r) => stdoutLine(r, /^READY /)));
        const onPort = listeningSockets().filter((l) => l.port === port);
        fs.writeFileSync(release, '');
        await finish(runs);
        const results = runs.map((r) => {
          expect(r.child.exitCode, `rank ${r.rank}: ${r.stdout}${r.stderr}`).to.equal(0);
          return taggedJson<{ storeAddress: string | null }>(r.stdout, 'RESULT')!;
        });
        const address = results[0].storeAddress as string;
        if (expectWildcard) {
          expect(address).to.equal(`*:${port}`);
          expect(onPort.map((l) => l.address)).to.deep.equal(['::']);
        } else {
          expect(address)
            .to.match(new RegExp(`:${port}$`))
            .and.not.match(/^\*/);
          expect(onPort.map((l) => l.address))
            .to.not.include('::')
            .and.not.include('0.0.0.0');
        }
      } finally {
        fs.rmSync(release, { force: true });
      }
    }
  });

  describe("rank 0's store against hostile peers (no authentication: bounded instead)", function () {
    const MAGIC = Buffer.from('CTCLIPS1');
    const u32 = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(n >>> 0);
      return b;
    };
    const str = (b: Buffer): Buffer => Buffer.concat([u32(b.length), b]);

    /** Sends `chunks` on a fresh connection; resolves with what came back once the server closed it or `want` bytes arrived. */
    function exchange(
      address: string,
      chunks: Buffer[],
      want = Infinity,
    ): Promise<{ reply: Buffer; closedByServer: boolean }> {
      const port = Number(address.slice(address.lastIndexOf(':') + 1));
      return new Promise((resolve, reject) => {
        const sock = net.connect({ host: '127.0.0.1', port });
        const got: Buffer[] = [];
        let closedByServer = false;
        sock.on('error', (e: NodeJS.ErrnoException) =>
          e.code === 'ECONNRESET' || e.code === 'EPIPE' ? (closedByServer = true) : reject(e),
        );
        sock.on('data', (d: Buffer) => {
          got.push(d);
          if (Buffer.concat(got).length >= want) sock.destroy();
        });
        sock.on('end', () => (closedByServer = true));
        sock.on('close', () => resolve({ reply: Buffer.concat(got), closedByServer }));
        sock.on('connect', () => {
          for (const c of chunks) sock.write(c);
        });
      });
    }

    it('listens where asked; a wrong handshake, an oversized key or value length and a full store cost nothing', async function () {
      const server = loadAddon().distRendezvousServer('127.0.0.1', 0);
      try {
        expect(server.address).to.match(/^127\.0\.0\.1:\d+$/);
        const wrong = await exchange(server.address, [Buffer.from('GET / HTTP/1.0\r\n\r\n')]);
        expect(wrong.closedByServer).to.equal(true);
        expect(wrong.reply.length).to.equal(0);
        const rss0 = process.memoryUsage().rss;
        // a SET whose key claims 4 GiB, then one whose value claims 3 GiB: closed without reading or allocating
        for (const req of [
          Buffer.concat([MAGIC, Buffer.from([1]), u32(0xffffffff)]),
          Buffer.concat([MAGIC, Buffer.from([1]), str(Buffer.from('k')), u32(3 * 1024 ** 3)]),
          Buffer.concat([MAGIC, Buffer.from([5]), u32(1_000_000)]),
        ]) {
          const r = await exchange(server.address, [req]);
          expect(r.closedByServer).to.equal(true);
          expect(r.reply.equals(MAGIC), 'only the handshake was answered').to.equal(true);
        }
        // the whole store is capped at 64 MiB: the fifth 15 MiB value is refused with an error reply
        const big = Buffer.alloc(15 * 1024 * 1024, 7);
        const replies: number[] = [];
        for (let i = 0; i < 5; i++) {
          const r = await exchange(
            server.address,
            [Buffer.concat([MAGIC, Buffer.from([1]), str(Buffer.from(`key${i}`)), str(big)])],
            MAGIC.length + 1,
          );
          replies.push(r.reply[MAGIC.length]);
        }
        expect(replies).to.deep.equal([0, 0, 0, 0, 1]);
        const grownMiB = (process.memoryUsage().rss - rss0) / 2 ** 20;
        expect(grownMiB, `RSS grew by ${grownMiB.toFixed(0)} MiB`).to.be.below(64 + 128);
      } finally {
        server.close();
      }
    });
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
  // [case, environment, what distEnvFrom must read from it]
  const cases: [string, Record<string, string>, Record<string, unknown>][] = [
    [
      'reads the torchrun environment, with LOCAL_* defaults',
      { RANK: '3', WORLD_SIZE: '4', MASTER_ADDR: 'node1', MASTER_PORT: '1234' },
      {
        rank: 3,
        worldSize: 4,
        localRank: 3,
        localWorldSize: 4,
        masterAddr: 'node1',
        masterPort: 1234,
        source: 'torchrun',
      },
    ],
    [
      "reads torchrun's agent store and restart count",
      {
        RANK: '0',
        WORLD_SIZE: '2',
        MASTER_ADDR: 'node1',
        MASTER_PORT: '1234',
        TORCHELASTIC_USE_AGENT_STORE: 'True',
        TORCHELASTIC_RESTART_COUNT: '2',
      },
      { useAgentStore: true, restartCount: 2, source: 'torchrun' },
    ],
    [
      'falls back to SLURM variables when RANK is absent, master from the node list',
      {
        SLURM_PROCID: '5',
        SLURM_NTASKS: '8',
        SLURM_LOCALID: '1',
        SLURM_NTASKS_PER_NODE: '4(x2)',
        SLURM_JOB_NODELIST: 'gpu[07-08]',
      },
      {
        rank: 5,
        worldSize: 8,
        localRank: 1,
        localWorldSize: 4,
        masterAddr: 'gpu07',
        masterPort: 29500,
        source: 'slurm',
      },
    ],
  ];
  for (const [name, env, expected] of cases) {
    it(name, function () {
      expect(distEnvFrom(env)).to.deep.include(expected);
    });
  }
  it('takes the first host of a SLURM node list', function () {
    expect(firstSlurmHost('a1,b2')).to.equal('a1');
    expect(firstSlurmHost('rack-[3-5,9],x')).to.equal('rack-3');
  });
  it('is a single process without either, and names bad variables', function () {
    expect(distEnvFrom({}).worldSize).to.equal(1);
    expect(() => distEnvFrom({ RANK: '2', WORLD_SIZE: '2', MASTER_ADDR: 'a', MASTER_PORT: '1' })).to.throw(
      /RANK=2 must be smaller than WORLD_SIZE=2/,
    );
    expect(() => distEnvFrom({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '1' })).to.throw(/MASTER_ADDR/);
    expect(() => distEnvFrom({ RANK: '0', WORLD_SIZE: 'x' })).to.throw(/WORLD_SIZE='x'/);
    expect(() => distEnvFrom({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'a', MASTER_PORT: '70000' })).to.throw(
      /MASTER_PORT='70000'/,
    );
  });
});
