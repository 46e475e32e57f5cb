/**
 * A tiny markup builder for the report's inline SVG and HTML, safe by construction:
 *
 * - `el(tag, attrs, ...children)` returns `Markup`; string children are ESCAPED, only `Markup` is inserted as is.
 *   User data (class names, study ids, paths, config values) can therefore only reach the page as text.
 * - Numeric attributes go through `svgNumber` (fixed decimals, trailing zeros trimmed, no "-0"). A non-finite
 *   numeric attribute (NaN, ±Infinity) is OMITTED rather than written, and `pathData` skips non-finite points
 *   (starting a new sub-path after the gap), so "NaN"/"Infinity" never appear in an attribute.
 * - Elements are written with an explicit end tag (`<path …></path>`), valid both as HTML and as SVG in HTML,
 *   except the HTML void elements (`<meta>`, `<br>`, …), which must not have one.
 */
import { CtclipError } from '../errors';

/** Trusted markup (already escaped). Only `el`, `raw` and the builders here create it. */
export class Markup {
  constructor(readonly html: string) {}
  toString(): string {
    return this.html;
  }
}

/** A child of an element: markup, text (escaped), or nothing. Arrays are flattened. */
export type Child = Markup | string | null | undefined | false | readonly Child[];

/** An attribute value: numbers are formatted (non-finite → attribute omitted); false/null/undefined omit it. */
export type AttrValue = string | number | boolean | null | undefined;

export type Attrs = Record<string, AttrValue>;

const NAME = /^[A-Za-z_][A-Za-z0-9_:.-]*$/;
const VOID_ELEMENTS = new Set([
  'area',
  'base',
  'br',
  'col',
  'embed',
  'hr',
  'img',
  'input',
  'link',
  'meta',
  'source',
  'track',
  'wbr',
]);

/** Escapes text for element content and double- or single-quoted attribute values. */
export function escapeXml(text: string): string {
  return String(text).replace(/[&<>"']/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;',
  );
}

/** Marks a string as trusted markup. Use only for constant markup written in this code base. */
export function raw(html: string): Markup {
  return new Markup(html);
}

/**
 * Formats a finite number for SVG: rounded to `digits` decimals, trailing zeros trimmed, never "-0".
 * Throws ARGUMENT_ERROR for NaN/±Infinity (callers that may see them use `el`, which drops the attribute, or
 * `pathData`, which skips the point).
 */
export function svgNumber(value: number, digits = 2): string {
  if (!Number.isFinite(value))
    throw new CtclipError('ARGUMENT_ERROR', `svgNumber: ${String(value)} is not a finite number`);
  let text = value.toFixed(digits);
  if (text.includes('.')) text = text.replace(/0+$/, '').replace(/\.$/, '');
  return text === '-0' ? '0' : text;
}

function appendChildren(out: string[], child: Child): void {
  if (child === null || child === undefined || child === false) return;
  if (child instanceof Markup) out.push(child.html);
  else if (typeof child === 'string') out.push(escapeXml(child));
  else if (Array.isArray(child)) for (const c of child as readonly Child[]) appendChildren(out, c);
  else
    throw new CtclipError(
      'ARGUMENT_ERROR',
      `el: unsupported child of type ${typeof child}; expected Markup, a string or an array`,
    );
}

/** Builds one element. Attribute order is kept; see the module comment for value handling. */
export function el(tag: string, attrs?: Attrs | null, ...children: Child[]): Markup {
  if (!NAME.test(tag)) throw new CtclipError('ARGUMENT_ERROR', `el: invalid tag name ${JSON.stringify(tag)}`);
  let open = `<${tag}`;
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (!NAME.test(name))
        throw new CtclipError('ARGUMENT_ERROR', `el: invalid attribute name ${JSON.stringify(name)} on <${tag}>`);
      if (value === null || value === undefined || value === false) continue;
      if (value === true) open += ` ${name}`;
      else if (typeof value === 'number') {
        if (Number.isFinite(value)) open += ` ${name}="${svgNumber(value)}"`;
      } else open += ` ${name}="${escapeXml(value)}"`;
    }
  }
  open += '>';
  if (VOID_ELEMENTS.has(tag.toLowerCase())) {
    if (children.some((c) => c !== null && c !== undefined && c !== false && !(Array.isArray(c) && c.length === 0))) {
      throw new CtclipError('ARGUMENT_ERROR', `el: <${tag}> is a void element and cannot have children`);
    }
    return new Markup(open);
  }
  const parts: string[] = [open];
  for (const c of children) appendChildren(parts, c);
  parts.push(`</${tag}>`);
  return new Markup(parts.join(''));
}

/** Concatenates children into one Markup (escaping strings). */
export function fragment(...children: Child[]): Markup {
  const parts: string[] = [];
  for (const c of children) appendChildren(parts, c);
  return new Markup(parts.join(''));
}

/** A linear map from `domain` to `range` (e.g. data → pixels). A degenerate domain maps to the range's midpoint. */
export function linearScale(
  domain: readonly [number, number],
  range: readonly [number, number],
): (v: number) => number {
  const [d0, d1] = domain;
  const [r0, r1] = range;
  const span = d1 - d0;
  if (span === 0 || !Number.isFinite(span)) return () => (r0 + r1) / 2;
  const k = (r1 - r0) / span;
  return (v: number) => r0 + (v - d0) * k;
}

/** True when a → b → c runs straight along one axis (same coordinate `fixed`, b between a and c on the other). */
function collinearRun(a: [string, string], b: [string, string], c: [string, string], fixed: 0 | 1): boolean {
  if (a[fixed] !== b[fixed] || b[fixed] !== c[fixed]) return false;
  const o = fixed === 0 ? 1 : 0;
  const [va, vb, vc] = [Number(a[o]), Number(b[o]), Number(c[o])];
  return (va <= vb && vb <= vc) || (va >= vb && vb >= vc);
}

/**
 * SVG path data for a polyline through `xs[i], ys[i]` (already in pixels). Points with a non-finite
 * coordinate are skipped and the next finite point starts a new sub-path (`M`). Consecutive points that round
 * to the same position are written once, and interior points of a horizontal or vertical run (the ROC's steps)
 * are dropped, which shrinks a step curve without changing its drawing. Returns "" when no point is finite.
 */
export function pathData(xs: ArrayLike<number>, ys: ArrayLike<number>, digits = 2): string {
  if (xs.length !== ys.length)
    throw new CtclipError('ARGUMENT_ERROR', `pathData: ${xs.length} x values but ${ys.length} y values`);
  const segments: Array<Array<[string, string]>> = [];
  let current: Array<[string, string]> | null = null;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    const y = ys[i];
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      current = null;
      continue;
    }
    const p: [string, string] = [svgNumber(x, digits), svgNumber(y, digits)];
    if (current === null) {
      current = [];
      segments.push(current);
    }
    const last = current[current.length - 1];
    if (last && last[0] === p[0] && last[1] === p[1]) continue;
    const prev = current[current.length - 2];
    if (last && prev && (collinearRun(prev, last, p, 0) || collinearRun(prev, last, p, 1))) current.pop();
    current.push(p);
  }
  return segments.map((seg) => seg.map(([x, y], k) => `${k === 0 ? 'M' : 'L'}${x} ${y}`).join(' ')).join(' ');
}
