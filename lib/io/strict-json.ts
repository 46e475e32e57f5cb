/**
 * Strict JSON for metric results. JSON has no NaN or Infinity; Python's json writes the non-standard `NaN`
 * (the reference's bug). `JSON.stringify` already maps non-finite numbers to `null`, but
 * only implicitly, and it writes typed arrays as `{"0": …}` objects. This helper makes the rule explicit and
 * tested (the fixtures' `nan_encoding: "null"`) and turns typed arrays (Float64Array curves) into arrays.
 */

/** `JSON.stringify` replacer: NaN/±Infinity → null, typed arrays → arrays. */
export function strictJsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(value as unknown as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? Number(v) : v));
  }
  return value;
}

/** Serialises `value` as strict JSON (NaN/Infinity → null). `space` as in `JSON.stringify`. */
export function toStrictJson(value: unknown, space?: number | string): string {
  return JSON.stringify(value, strictJsonReplacer, space);
}

/** A deep copy safe to embed in another JSON document: non-finite numbers replaced by null. */
export function toStrictJsonValue<T>(value: T): unknown {
  const text = toStrictJson(value);
  return text === undefined ? undefined : JSON.parse(text);
}

/** Reads a metrics JSON written with `toStrictJson`, turning `null` back into NaN where a number is expected. */
export function nullToNaN(value: number | null | undefined): number {
  return value === null || value === undefined ? NaN : value;
}
