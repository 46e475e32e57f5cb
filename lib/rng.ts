/**
 * The product's seeded random number generator (never `Math.random` in the pipeline).
 *
 * xoshiro128** (Blackman & Vigna) on four 32-bit words, seeded through splitmix32. It is small, fast in
 * plain 32-bit JS arithmetic, and its whole state is four numbers, so it can be saved in a checkpoint and
 * restored exactly. It is NOT bit-compatible with numpy or Python's `random`: nothing here promises to
 * reproduce the reference's random draws, only our own runs.
 *
 * Independent streams (data order per epoch, bootstrap, eval subset, …) are derived with `Rng.derive(seed,
 * ...labels)`, which hashes the base seed with the labels so that streams never overlap by accident.
 */
export type RngState = readonly [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** FNV-1a over a string, used to turn stream labels into 32-bit words. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** 32-bit rotate left (int32 result; callers store into the Uint32Array state or `>>> 0` it). */
function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export class Rng {
  // The state lives in a Uint32Array: reads and writes stay 32-bit integers (no heap numbers), which makes
  // nextUint32 several times faster than four number fields in V8.
  private readonly s = new Uint32Array(4);

  /** A generator seeded from a non-negative integer seed (any integer up to 2^53 is used in full). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new RangeError(`Rng seed must be a non-negative safe integer, got ${seed}`);
    }
    const lo = seed % 0x100000000;
    const hi = Math.floor(seed / 0x100000000);
    const mix = splitmix32(lo ^ Math.imul(hi, 0x9e3779b1));
    this.s[0] = mix();
    this.s[1] = mix() ^ hi;
    this.s[2] = mix();
    this.s[3] = mix();
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[3] = 1;
  }

  /** A generator for an independent stream: same (seed, labels) ⇒ same stream. */
  static derive(seed: number, ...labels: Array<string | number>): Rng {
    let h = new Rng(seed).nextUint32();
    for (const label of labels) h = (Math.imul(h ^ fnv1a(String(label)), 0x9e3779b1) + 0x7f4a7c15) >>> 0;
    const r = new Rng(seed);
    const mix = splitmix32(h);
    for (let i = 0; i < 4; i++) r.s[i] ^= mix();
    if ((r.s[0] | r.s[1] | r.s[2] | r.s[3]) === 0) r.s[3] = 1;
    return r;
  }

  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  getState(): RngState {
    return [this.s[0], this.s[1], this.s[2], this.s[3]];
  }

  setState(state: RngState): void {
    if (state.length !== 4 || state.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff)) {
      throw new RangeError(`invalid Rng state ${JSON.stringify(state)}: expected four uint32 words`);
    }
    this.s.set(state);
  }

  /** Next uniformly distributed uint32. */
  nextUint32(): number {
    const s = this.s;
    const s0 = s[0];
    const s1 = s[1];
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const s2 = s[2] ^ s0;
    const s3 = s[3] ^ s1;
    s[1] = s1 ^ s2;
    s[0] = s0 ^ s3;
    s[2] = s2 ^ (s1 << 9);
    s[3] = rotl(s3, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), unbiased (rejection sampling), for 1 <= n <= 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 0x100000000)
      throw new RangeError(`Rng.int(n) needs 1 <= n <= 2^32, got ${n}`);
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal deviate (Box–Muller; one value per call, the pair's twin is discarded for simplicity). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.nextFloat();
    const v = this.nextFloat();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T>(items: T[] | Int32Array | Uint32Array | Float64Array): void {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
  }

  /** A seeded permutation of 0..n-1. */
  permutation(n: number): Uint32Array {
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    this.shuffle(p);
    return p;
  }
}
