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
import { plotBox, plotFrame, xAxis, xAxisTitle, yAxis, yAxisTitle } from './axes';
import { Child, Markup, el, linearScale, pathData } from './svg';
import { CHAR_PX, FONT, MUTED, SERIES_COLORS } from './style';
import type { ClassRocCurve } from '../results/results';

const CURVE_COLOR = SERIES_COLORS[0];

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
  const box = plotBox({ left: 44, top: 30, right: 12, bottom: 38 }, 160, 160);
  const { x0, x1, y0, y1, width, height } = box;
  const sx = linearScale([0, 1], [x0, x1]);
  const sy = linearScale([0, 1], [y1, y0]);
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
        x: x0 + box.plotWidth / 2,
        y: 16,
        'text-anchor': 'middle',
        'font-size': 11.5,
        'font-weight': 'bold',
      },
      titleText,
    ),
    plotFrame(box),
    xAxis(box, ticks, sx, String),
    yAxis(box, ticks, sy, String),
    xAxisTitle(box, height - 6, 'False positive rate'),
    yAxisTitle(box, 11, 'True positive rate'),
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
      { class: 'panel-auroc', x: x1 - 6, y: y1 - 8, 'text-anchor': 'end', fill: '#222' },
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
  const rowH = 20;
  const top = 26;
  // Right of the plot: each bar's value and interval.
  const box = plotBox({ left, top, right: 190, bottom: 40 }, 380, rows.length * rowH);
  const { x1, y1: axisY, width, height } = box;
  const sx = linearScale([0, 1], [left, x1]);
  const ticks = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];
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
    body.push(el('text', { class: 'bar-value', x: x1 + 8, y: yMid + 4, fill: '#222' }, valueText));
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
    xAxis(box, ticks, sx, String, { labelGap: 16, fontSize: 10 }),
    xAxisTitle(box, height - 6, 'AUROC' + (hasCi ? ` (whiskers: ${opts.ciLabel ?? 'CI'})` : '')),
  );
}
