/**
 * The look the report charts share (the evaluation report's ROC panels and AUROC bars, the run report's line
 * charts), so both pages draw alike.
 */

/** The font stack of the charts and of the run report's page. */
export const FONT = 'system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif';

/** Curve colours, one per series in order; the first is also the ROC curves' and the AUROC bars' colour. */
export const SERIES_COLORS = ['#1f5fa8', '#d9631e', '#2a9d4b', '#8e44ad', '#b03a2e'];

/** Axis lines, ticks and axis text. */
export const AXIS_COLOR = '#444';

/** Secondary marks: chance lines, "excluded" and "no data" notes. */
export const MUTED = '#888';

/** Rough width of one character at 12 px in a sans-serif font, for layout. */
export const CHAR_PX = 6.6;
