/**
 * Typed errors. Every error the product raises on purpose carries a stable `code` so that callers (the CLI,
 * library users, tests) can branch on it without parsing messages. Errors coming from the native addon carry
 * the same kind of code (`TORCH_ERROR`, `SHAPE_ERROR`, …), set in C++.
 */
export type ErrorCode =
  | 'CONFIG_ERROR'
  | 'ARGUMENT_ERROR'
  | 'ADDON_MISSING'
  | 'ADDON_MISMATCH'
  | 'IO_ERROR'
  | 'DATA_ERROR'
  | 'PLAN_ERROR'
  | 'TORCH_ERROR'
  | 'SHAPE_ERROR'
  | 'DIST_ERROR'
  | 'DIST_TIMEOUT'
  | 'NATIVE_ERROR'
  /** A device (the config's `device` section, a `{device}` option, `model.to(...)`) that libtorch does not have (native, lib/model/device.ts). */
  | 'DEVICE_UNAVAILABLE'
  /** An allocation failed in the CPU or CUDA allocator of libtorch (native). */
  | 'OUT_OF_MEMORY'
  /** Training stopped: too many consecutive non-finite (skipped) steps (training.max_consecutive_skipped_steps). */
  | 'NON_FINITE';

export class CtclipError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CtclipError';
    this.code = code;
  }
}

/** True when `e` is an Error carrying the given code (works for native errors too). */
export function hasCode(e: unknown, code: ErrorCode): boolean {
  return e instanceof Error && (e as Error & { code?: unknown }).code === code;
}
