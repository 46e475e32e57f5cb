/** The markup builder: escaping, numeric formatting, non-finite handling, path data. */
import { expect } from 'chai';
import { el, escapeXml, fragment, linearScale, pathData, raw, svgNumber } from '../../lib/report/svg';

describe('evaluation: svg builder', function () {
  it('escapes the five XML special characters', function () {
    expect(escapeXml(`A<b>&"c"'d`)).to.equal('A&lt;b&gt;&amp;&quot;c&quot;&#39;d');
    expect(escapeXml('&amp;')).to.equal('&amp;amp;');
  });

  it('formats numbers with fixed decimals, trimmed, never -0, and refuses non-finite values', function () {
    expect(svgNumber(1)).to.equal('1');
    expect(svgNumber(1.5)).to.equal('1.5');
    expect(svgNumber(1.23456)).to.equal('1.23');
    expect(svgNumber(1.23456, 4)).to.equal('1.2346');
    expect(svgNumber(-0.001)).to.equal('0');
    expect(svgNumber(-0)).to.equal('0');
    expect(svgNumber(100)).to.equal('100');
    expect(svgNumber(-12.5)).to.equal('-12.5');
    for (const v of [NaN, Infinity, -Infinity])
      expect(() => svgNumber(v))
        .to.throw(/not a finite number/)
        .with.property('code', 'ARGUMENT_ERROR');
  });

  it('el: escapes text children and attribute values, inserts only Markup raw', function () {
    const m = el('text', { 'data-class': 'A<b>&"c"', x: 1.005 }, 'A<b>&"c"', raw('<tspan>ok</tspan>'));
    expect(m.html).to.equal(
      '<text data-class="A&lt;b&gt;&amp;&quot;c&quot;" x="1">A&lt;b&gt;&amp;&quot;c&quot;<tspan>ok</tspan></text>',
    );
  });

  it('el: omits non-finite numeric attributes and false/null/undefined, writes true as a bare attribute', function () {
    const m = el('rect', {
      x: NaN,
      y: Infinity,
      width: -Infinity,
      height: 2,
      a: null,
      b: undefined,
      c: false,
      open: true,
    });
    expect(m.html).to.equal('<rect height="2" open></rect>');
    expect(m.html).to.not.match(/NaN|Infinity/);
  });

  it('el: void HTML elements have no end tag and no children; names are validated', function () {
    expect(el('meta', { charset: 'utf-8' }).html).to.equal('<meta charset="utf-8">');
    expect(() => el('br', null, 'x')).to.throw(/void element/);
    expect(() => el('a b')).to.throw(/invalid tag name/);
    expect(() => el('g', { 'on"click': 'x' })).to.throw(/invalid attribute name/);
  });

  it('fragment flattens nested arrays and skips empty children', function () {
    expect(fragment('a', [el('b'), ['<', null, false]], undefined).html).to.equal('a<b></b>&lt;');
  });

  it('linearScale maps the domain onto the range (inverted y included) and a degenerate domain to the middle', function () {
    const sy = linearScale([0, 1], [200, 40]);
    expect(sy(0)).to.equal(200);
    expect(sy(1)).to.equal(40);
    expect(sy(0.5)).to.equal(120);
    expect(linearScale([3, 3], [0, 10])(3)).to.equal(5);
  });

  it('pathData: M then L, duplicate points once, straight axis-aligned runs collapsed', function () {
    expect(pathData([0, 0, 0, 10, 20, 20], [0, 5, 10, 10, 10, 10])).to.equal('M0 0 L0 10 L20 10');
    // A run that turns back is kept.
    expect(pathData([0, 0, 0], [0, 10, 5])).to.equal('M0 0 L0 10 L0 5');
    expect(pathData([], [])).to.equal('');
  });

  it('pathData: skips non-finite points and restarts the path after a gap', function () {
    const d = pathData([0, 1, NaN, 3, 4, Infinity], [0, 1, 2, 3, 4, 5]);
    expect(d).to.equal('M0 0 L1 1 M3 3 L4 4');
    expect(d).to.not.match(/NaN|Infinity/);
    expect(pathData([NaN], [NaN])).to.equal('');
    expect(() => pathData([1, 2], [1])).to.throw(/2 x values but 1 y values/);
  });
});
