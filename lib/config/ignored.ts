/**
 * Keys that the reference pipeline's configs carry but ctclip does not use (read but unused there,
 * plus the MODERN model ablation flags), accepted in any config: each is removed and named, with the reason, in
 * the one "ignored keys" warning of its config file. Keys only the original pipeline's format has are translated
 * by original.ts. Any other unknown key is an error.
 */
export const IGNORED_KEYS: ReadonlyMap<string, string> = new Map([
  ['data.reports_train', 'reports come from the shards (txt member)'],
  ['data.reports_valid', 'reports come from the shards (txt member)'],
  ['data.train_meta', 'metadata is only needed by `ctclip preprocess`'],
  ['data.valid_meta', 'metadata is only needed by `ctclip preprocess`'],
  ['data.labels_train', 'training does not use labels'],
  ['data.persistent_workers', 'ctclip readers are always persistent'],
  ['data.use_embedding', 'precomputed embeddings are not supported'],
  ['data.embedding_dir', 'precomputed embeddings are not supported'],
  ['data.shuffle_buffer_size', 'ctclip shuffles globally per epoch (no shuffle buffer)'],
  ['data.pin_memory', 'ctclip keeps volumes float16 until the device'],
  ['logging.tensorboard', 'use logging.use_tensorboard (events go to <save_dir>/tensorboard)'],
  ['model.use_flash_attention', 'reference ablation flag; not a ctclip model option'],
  ['model.use_rms_norm', 'reference ablation flag; not a ctclip model option'],
  ['model.use_swiglu', 'reference ablation flag; not a ctclip model option'],
  ['model.loss_type', 'use model.loss.type'],
  ['model.text_encoder.trust_remote_code', 'ctclip never executes remote code'],
  ['device.mixed_precision', 'use training.mixed_precision'],
]);
