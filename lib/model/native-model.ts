/**
 * What every native model wrapper (CTViT, CTClip) shares: building the native model from a resolved config, the
 * handle and config, train/eval mode, the parameter counts, state-dict access by name, and dispose. Each subclass
 * names its addon functions once in a `NativeModelOps` table; everything model-specific stays in the subclass.
 */
import { CtclipError } from '../errors';
import type { TensorHandle } from '../native';

/** The fields of a model's `info()` that this base class reads. */
export interface NativeModelInfo {
  training: boolean;
  parameterCount: number;
  trainableParameterCount: number;
}

/** The addon functions of one model type: its native constructor and those behind the shared methods. */
export interface NativeModelOps<H, C, I, S> {
  /** Builds the native model (seeded initialisation, eval mode) from a resolved config. */
  create(config: C): H;
  info(handle: H): I;
  setTraining(handle: H, mode: boolean): void;
  stateDict(handle: H): S;
  loadStateDict(
    handle: H,
    names: string[],
    tensors: TensorHandle[],
    opts: { strict: boolean },
  ): { missing: string[]; unexpected: string[] };
}

export abstract class NativeModel<H extends { dispose(): void }, C, I extends NativeModelInfo, S> {
  readonly handle: H;
  readonly config: C;
  private readonly ops: NativeModelOps<H, C, I, S>;

  /** Builds the native model of `config`, already resolved (validated, defaults filled) by the subclass. */
  protected constructor(config: C, ops: NativeModelOps<H, C, I, S>) {
    this.handle = ops.create(config);
    this.config = config;
    this.ops = ops;
  }

  info(): I {
    return this.ops.info(this.handle);
  }

  get training(): boolean {
    return this.info().training;
  }

  train(mode = true): this {
    this.ops.setTraining(this.handle, mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Reference-ordered state; the tensors are shared with the model, not copied. */
  stateDict(): S {
    return this.ops.stateDict(this.handle);
  }

  /** Copies tensors into the model by name. Strict (default) refuses missing or unexpected keys. */
  loadStateDict(
    names: string[],
    tensors: TensorHandle[],
    opts: { strict?: boolean } = {},
  ): { missing: string[]; unexpected: string[] } {
    if (names.length !== tensors.length)
      throw new CtclipError('ARGUMENT_ERROR', `loadStateDict: ${names.length} names but ${tensors.length} tensors`);
    return this.ops.loadStateDict(this.handle, names, tensors, { strict: opts.strict ?? true });
  }

  /** All parameters (inert ones included, as the reference counts them). */
  parameterCount(): number {
    return this.info().parameterCount;
  }

  /** Parameters that take part in training (inert tensors excluded). */
  trainableParameterCount(): number {
    return this.info().trainableParameterCount;
  }

  dispose(): void {
    this.handle.dispose();
  }
}
