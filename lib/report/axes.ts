/**
 * The frame of a report chart: the plot area inside its margins (`plotBox`), its outline, the x axis along its
 * bottom edge and the y axis along its left edge (a tick and a label per tick value), and the axis titles. The
 * evaluation report's charts (charts.ts) and the run report's line charts (lib/logging/run-report.ts) build their
 * axes here, so the markup is the same everywhere: `<g class="axis axis-x|axis-y">` holding the axis `<line>`,
 * `<line class="tick">` and `<text class="tick-label">`, and `<text class="axis-label axis-label-x|axis-label-y">`.
 */
import { Markup, el, svgNumber } from './svg';
import { AXIS_COLOR } from './style';

/** A chart's plot area and its whole size, in pixels from the chart's top left corner. */
export interface PlotBox {
  /** Left, right, top and bottom edges of the plot area. */
  x0: number;
  x1: number;
  y0: number;
  y1: number;
  plotWidth: number;
  plotHeight: number;
  /** The chart: the plot area and its margins. */
  width: number;
  height: number;
}

/** The plot area of `plotWidth` × `plotHeight` inside the given margins. */
export function plotBox(
  margins: { left: number; top: number; right: number; bottom: number },
  plotWidth: number,
  plotHeight: number,
): PlotBox {
  const { left, top, right, bottom } = margins;
  return {
    x0: left,
    x1: left + plotWidth,
    y0: top,
    y1: top + plotHeight,
    plotWidth,
    plotHeight,
    width: left + plotWidth + right,
    height: top + plotHeight + bottom,
  };
}

/** The light outline of the plot area. */
export function plotFrame(box: PlotBox): Markup {
  const { x0, y0, plotWidth, plotHeight } = box;
  return el('rect', {
    class: 'plot-frame',
    x: x0,
    y: y0,
    width: plotWidth,
    height: plotHeight,
    fill: 'none',
    stroke: '#ddd',
  });
}

/**
 * The x axis along the plot's bottom edge, a tick at `x(t)` for each of `ticks` labelled `label(t)`; the labels'
 * baseline is `labelGap` below the axis, in `fontSize` when given (else the chart's).
 */
export function xAxis(
  box: PlotBox,
  ticks: readonly number[],
  x: (t: number) => number,
  label: (t: number) => string,
  opts: { labelGap?: number; fontSize?: number } = {},
): Markup {
  const y = box.y1;
  return el(
    'g',
    { class: 'axis axis-x', stroke: AXIS_COLOR },
    el('line', { x1: box.x0, y1: y, x2: box.x1, y2: y }),
    ticks.map((t) => [
      el('line', { class: 'tick', x1: x(t), y1: y, x2: x(t), y2: y + 4 }),
      el(
        'text',
        {
          class: 'tick-label',
          x: x(t),
          y: y + (opts.labelGap ?? 15),
          'text-anchor': 'middle',
          stroke: 'none',
          fill: AXIS_COLOR,
          'font-size': opts.fontSize,
        },
        label(t),
      ),
    ]),
  );
}

/** The y axis along the plot's left edge, a tick at `y(t)` for each of `ticks` labelled `label(t)`. */
export function yAxis(
  box: PlotBox,
  ticks: readonly number[],
  y: (t: number) => number,
  label: (t: number) => string,
): Markup {
  const x = box.x0;
  return el(
    'g',
    { class: 'axis axis-y', stroke: AXIS_COLOR },
    el('line', { x1: x, y1: box.y0, x2: x, y2: box.y1 }),
    ticks.map((t) => [
      el('line', { class: 'tick', x1: x - 4, y1: y(t), x2: x, y2: y(t) }),
      el(
        'text',
        { class: 'tick-label', x: x - 6, y: y(t) + 3.5, 'text-anchor': 'end', stroke: 'none', fill: AXIS_COLOR },
        label(t),
      ),
    ]),
  );
}

/** The x axis title, centred under the plot with its baseline at `y`. */
export function xAxisTitle(box: PlotBox, y: number, text: string): Markup {
  return el(
    'text',
    { class: 'axis-label axis-label-x', x: box.x0 + box.plotWidth / 2, y, 'text-anchor': 'middle', fill: AXIS_COLOR },
    text,
  );
}

/** The y axis title, turned a quarter left and centred beside the plot, with its baseline at `x`. */
export function yAxisTitle(box: PlotBox, x: number, text: string): Markup {
  return el(
    'text',
    {
      class: 'axis-label axis-label-y',
      x: 0,
      y: 0,
      transform: `translate(${x} ${svgNumber(box.y0 + box.plotHeight / 2)}) rotate(-90)`,
      'text-anchor': 'middle',
      fill: AXIS_COLOR,
    },
    text,
  );
}
