/**
 * The report's charts, as inline SVG (no scripts, no external resources):
 *
 * - `rocPanels`: small multiples, one `<svg class="roc-panel">` per VALID class, each with exactly one
 *   `<path class="roc-curve" data-class="…">`, an x and a y axis (`<g class="axis axis-x|axis-y">` with ticks),
 *   the axis labels "False positive rate" / "True positive rate" (`<text class="axis-label …">`) and the chance
 *   diagonal drawn as a dashed `<line class="roc-diagonal">` (not a path, so it can never be mistaken for a curve).
 * - `aurocBars`: one horizontal bar per class (`<rect class="auroc-bar">`), a CI whisker with caps
 *   (`<line class="ci-whisker">`, `<line class="ci-cap">`) when the interval exists, a dashed chance line at 0.5,
 *   and a text "excluded (…)" in place of the bar for single-valued classes.
 *
 * Class names are user data: they only ever reach the markup as escaped text or attribute values (see svg.ts).
 */
import { Child, Markup, el, linearScale, pathData, svgNumber } from './svg';
import type { ClassRocCurve } from '../results/results';

const FONT = 'system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif';
const CURVE_COLOR = '#1f5fa8';
const AXIS_COLOR = '#444';
const MUTED = '#888';
/** Rough width of one character at 12 px in a sans-serif font, for layout. */
const CHAR_PX = 6.6;

/** Shortens `text` to at most `max` characters, ending in "…" when cut. */
export function truncate(text: string, max: number): string {
  const chars = Array.from(text);
  if (chars.length <= max) return text;
  return chars.slice(0, Math.max(1, max - 1)).join('') + '…';
}

function fmt3(v: number): string {
  return Number.isFinite(v) ? v.toFixed(3) : 'n/a';
}

/** The ROC panel of one class. */
export function rocPanel(curve: ClassRocCurve): Markup {
  const left = 44;
  const top = 30;
  const size = 160;
  const bottom = 38;
  const right = 12;
  const width = left + size + right;
  const height = top + size + bottom;
  const sx = linearScale([0, 1], [left, left + size]);
  const sy = linearScale([0, 1], [top + size, top]);
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const xs = Array.from(curve.fpr, sx);
  const ys = Array.from(curve.tpr, sy);
  const titleText = truncate(curve.name, 30);
  return el(
    'svg',
    {
      class: 'roc-panel',
      'data-class': curve.name,
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: 'img',
      'aria-label': `ROC curve of ${curve.name}, AUROC ${fmt3(curve.auroc)}`,
      'font-family': FONT,
      'font-size': 11,
    },
    el('title', null, `${curve.name}: AUROC ${fmt3(curve.auroc)}`),
    el(
      'text',
      {
        class: 'panel-title',
        x: left + size / 2,
        y: 16,
        'text-anchor': 'middle',
        'font-size': 11.5,
        'font-weight': 'bold',
      },
      titleText,
    ),
    el('rect', { class: 'plot-frame', x: left, y: top, width: size, height: size, fill: 'none', stroke: '#ddd' }),
    el(
      'g',
      { class: 'axis axis-x', stroke: AXIS_COLOR },
      el('line', { x1: left, y1: top + size, x2: left + size, y2: top + size }),
      ticks.map((t) => [
        el('line', { class: 'tick', x1: sx(t), y1: top + size, x2: sx(t), y2: top + size + 4 }),
        el(
          'text',
          {
            class: 'tick-label',
            x: sx(t),
            y: top + size + 15,
            'text-anchor': 'middle',
            stroke: 'none',
            fill: AXIS_COLOR,
          },
          String(t),
        ),
      ]),
    ),
    el(
      'g',
      { class: 'axis axis-y', stroke: AXIS_COLOR },
      el('line', { x1: left, y1: top, x2: left, y2: top + size }),
      ticks.map((t) => [
        el('line', { class: 'tick', x1: left - 4, y1: sy(t), x2: left, y2: sy(t) }),
        el(
          'text',
          { class: 'tick-label', x: left - 6, y: sy(t) + 3.5, 'text-anchor': 'end', stroke: 'none', fill: AXIS_COLOR },
          String(t),
        ),
      ]),
    ),
    el(
      'text',
      {
        class: 'axis-label axis-label-x',
        x: left + size / 2,
        y: height - 6,
        'text-anchor': 'middle',
        fill: AXIS_COLOR,
      },
      'False positive rate',
    ),
    el(
      'text',
      {
        class: 'axis-label axis-label-y',
        x: 0,
        y: 0,
        transform: `translate(11 ${svgNumber(top + size / 2)}) rotate(-90)`,
        'text-anchor': 'middle',
        fill: AXIS_COLOR,
      },
      'True positive rate',
    ),
    el('line', {
      class: 'roc-diagonal',
      x1: sx(0),
      y1: sy(0),
      x2: sx(1),
      y2: sy(1),
      stroke: MUTED,
      'stroke-dasharray': '4 3',
      'stroke-width': 1,
    }),
    el(
      'text',
      { class: 'panel-auroc', x: left + size - 6, y: top + size - 8, 'text-anchor': 'end', fill: '#222' },
      `AUROC ${fmt3(curve.auroc)}`,
    ),
    el('path', {
      class: 'roc-curve',
      'data-class': curve.name,
      d: pathData(xs, ys),
      fill: 'none',
      stroke: CURVE_COLOR,
      'stroke-width': 1.75,
      'stroke-linejoin': 'round',
    }),
  );
}

/** One panel per valid class, in the given order. */
export function rocPanels(curves: readonly ClassRocCurve[]): Markup[] {
  return curves.map(rocPanel);
}

/** One row of the AUROC bar chart. `auroc` NaN ⇒ excluded (with `note`). */
export interface AurocBarRow {
  name: string;
  auroc: number;
  lower?: number;
  upper?: number;
  /** Shown instead of a bar when `auroc` is NaN, e.g. "excluded (no positives)". */
  note?: string;
}

function clamp01(v: number): number {
  return Math.min(1, Math.max(0, v));
}

/** Horizontal per-class AUROC bars with CI whiskers where lower/upper are finite. */
export function aurocBars(rows: readonly AurocBarRow[], opts: { ciLabel?: string } = {}): Markup {
  const maxChars = Math.max(4, ...rows.map((r) => Array.from(r.name).length));
  const labelChars = Math.min(maxChars, 40);
  const left = Math.round(Math.min(280, Math.max(80, labelChars * CHAR_PX + 12)));
  const plot = 380;
  const valueWidth = 190;
  const rowH = 20;
  const top = 26;
  const bottom = 40;
  const width = left + plot + valueWidth;
  const height = top + rows.length * rowH + bottom;
  const sx = linearScale([0, 1], [left, left + plot]);
  const ticks = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];
  const axisY = top + rows.length * rowH;
  const hasCi = rows.some((r) => Number.isFinite(r.lower) && Number.isFinite(r.upper));

  const body: Child[] = [];
  rows.forEach((r, i) => {
    const yMid = top + i * rowH + rowH / 2;
    const label = truncate(r.name, labelChars);
    body.push(
      el(
        'text',
        { class: 'bar-label', x: left - 8, y: yMid + 4, 'text-anchor': 'end', fill: '#222' },
        el('title', null, r.name),
        label,
      ),
    );
    if (!Number.isFinite(r.auroc)) {
      body.push(
        el(
          'text',
          { class: 'bar-excluded', x: left + 6, y: yMid + 4, fill: MUTED, 'font-style': 'italic' },
          r.note ?? 'excluded',
        ),
      );
      return;
    }
    const v = clamp01(r.auroc);
    body.push(
      el('rect', {
        class: 'auroc-bar',
        'data-class': r.name,
        x: left,
        y: yMid - 6,
        width: sx(v) - left,
        height: 12,
        fill: '#9dbbe0',
        stroke: CURVE_COLOR,
        'stroke-width': 0.75,
      }),
    );
    let valueText = r.auroc.toFixed(3);
    if (Number.isFinite(r.lower) && Number.isFinite(r.upper)) {
      const lo = sx(clamp01(r.lower as number));
      const hi = sx(clamp01(r.upper as number));
      body.push(
        el('line', {
          class: 'ci-whisker',
          'data-class': r.name,
          x1: lo,
          y1: yMid,
          x2: hi,
          y2: yMid,
          stroke: '#111',
          'stroke-width': 1.25,
        }),
        el('line', {
          class: 'ci-cap',
          x1: lo,
          y1: yMid - 4,
          x2: lo,
          y2: yMid + 4,
          stroke: '#111',
          'stroke-width': 1.25,
        }),
        el('line', {
          class: 'ci-cap',
          x1: hi,
          y1: yMid - 4,
          x2: hi,
          y2: yMid + 4,
          stroke: '#111',
          'stroke-width': 1.25,
        }),
      );
      valueText += ` [${(r.lower as number).toFixed(3)}, ${(r.upper as number).toFixed(3)}]`;
    }
    body.push(el('text', { class: 'bar-value', x: left + plot + 8, y: yMid + 4, fill: '#222' }, valueText));
  });

  return el(
    'svg',
    {
      class: 'auroc-bars',
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: 'img',
      'aria-label': 'Per-class AUROC' + (hasCi ? ` with ${opts.ciLabel ?? 'CI'} whiskers` : ''),
      'font-family': FONT,
      'font-size': 12,
    },
    el('title', null, 'Per-class AUROC' + (hasCi ? ` (whiskers: ${opts.ciLabel ?? 'CI'})` : '')),
    ticks.map((t) => el('line', { class: 'grid', x1: sx(t), y1: top, x2: sx(t), y2: axisY, stroke: '#eee' })),
    el('line', {
      class: 'chance-line',
      x1: sx(0.5),
      y1: top - 4,
      x2: sx(0.5),
      y2: axisY,
      stroke: MUTED,
      'stroke-dasharray': '4 3',
    }),
    el(
      'text',
      { class: 'chance-label', x: sx(0.5), y: top - 8, 'text-anchor': 'middle', fill: MUTED, 'font-size': 10 },
      'chance',
    ),
    body,
    el(
      'g',
      { class: 'axis axis-x', stroke: AXIS_COLOR },
      el('line', { x1: left, y1: axisY, x2: left + plot, y2: axisY }),
      ticks.map((t) => [
        el('line', { class: 'tick', x1: sx(t), y1: axisY, x2: sx(t), y2: axisY + 4 }),
        el(
          'text',
          {
            class: 'tick-label',
            x: sx(t),
            y: axisY + 16,
            'text-anchor': 'middle',
            stroke: 'none',
            fill: AXIS_COLOR,
            'font-size': 10,
          },
          String(t),
        ),
      ]),
    ),
    el(
      'text',
      {
        class: 'axis-label axis-label-x',
        x: left + plot / 2,
        y: height - 6,
        'text-anchor': 'middle',
        fill: AXIS_COLOR,
      },
      'AUROC' + (hasCi ? ` (whiskers: ${opts.ciLabel ?? 'CI'})` : ''),
    ),
  );
}
