import { expect } from 'chai';

/**
 * Awaits `p` (a promise, or a function that throws or returns one) and asserts that it fails with an Error whose
 * `code` is `code` and whose message contains every fragment. Returns the error for further checks.
 */
export async function expectRejects(
  p: Promise<unknown> | (() => unknown),
  code: string,
  ...fragments: string[]
): Promise<Error> {
  let error: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    error = e;
  }
  expect(error, 'expected an error').to.be.instanceOf(Error);
  const e = error as Error & { code?: string };
  expect(e.code, e.message).to.equal(code);
  for (const f of fragments) expect(e.message).to.include(f);
  return e;
}

/** The error `p` rejects with (any error); fails when `p` resolves. For tests that inspect the error themselves. */
export async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

/** The error `fn` throws (any error); fails when it returns. The synchronous `rejection`. */
export function errorOf(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected an error');
}
