/**
 * Stable names for why a sample (or a shard's worth of samples) was excluded at index time or skipped at read
 * time. They key `ExcludedSample.code` in `ctclip-index.json`, `SampleReadError.code` and
 * `LoaderStats.badSamples.byReason`, and the run report lists them; never rename one (add new ones instead).
 */
export const BAD_SAMPLE_REASONS = {
  // Whole shards (index time; `key` '*').
  missing_shard: 'a shard named by the pattern does not exist',
  empty_shard: 'a shard file is empty (0 bytes, or a tar without members)',
  unreadable_shard: 'a shard cannot be opened or read (permissions, gzip data, corrupt first header)',
  truncated_shard:
    'a shard ends early (cut inside a member, or at a sample boundary without the end-of-archive blocks): samples after the cut are lost',
  corrupt_shard: 'a tar header is corrupt (bad checksum or size field): samples after it are lost',
  // One sample.
  truncated_member: 'a member runs past the end of its shard (shard cut or changed since indexing)',
  duplicate_member: 'a sample has the same extension twice, or its key reappears later in the shard',
  missing_member: 'a sample lacks bin, json, txt, or labels when the dataset has classes',
  bad_json: 'the JSON member is unparsable, too large, or lacks study_id / volume_shape / volume_dtype',
  bad_dtype: 'volume_dtype is not float16',
  size_mismatch: "the bin payload size is not volume_shape × dtype, or not the index's sample size",
  shape_mismatch: "volume_shape differs from the dataset's (or the index's) shape",
  bad_label: 'the labels member has the wrong length, or a value that is not 0 or 1 (NaN, ±Inf, 0.5, …)',
  non_finite_volume: 'the volume holds NaN or ±Infinity voxels',
  oversize_report: 'the report text (txt) is larger than data.max_report_bytes',
  bad_index_ref: 'an index entry names a shard the index does not list, or member extents outside its shard',
  io_error: 'an I/O error while reading the sample',
  unexpected: 'any other error while reading the sample',
  excluded: 'excluded by an index written before reason codes existed',
} as const;

export type BadSampleReason = keyof typeof BAD_SAMPLE_REASONS;

/** True for a known reason name. */
export function isBadSampleReason(s: unknown): s is BadSampleReason {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(BAD_SAMPLE_REASONS, s);
}
