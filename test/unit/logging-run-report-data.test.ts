/**
 * The run report's data section: the per-reason counts of samples the run lost (the `bad_samples` field the
 * trainer writes in its `end` event), for the training and the validation data.
 */
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadRunData, runReportHtml } from '../../lib/logging/run-report';

describe('logging/run-report: bad samples by reason', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctclip-report-data-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const write = (events: object[]): void =>
    fs.writeFileSync(path.join(dir, 'metrics.jsonl'), events.map((e) => JSON.stringify(e)).join('\n') + '\n');

  it('lists every reason with its training and validation counts, and the totals', () => {
    write([
      { type: 'train', step: 1, epoch: 0.1, loss: 1.5 },
      {
        type: 'end',
        step: 4,
        epoch: 0.4,
        status: 'completed',
        bad_samples: {
          train: {
            excluded_at_index: 11,
            bad_at_read: 2,
            budget: 100,
            by_reason: { truncated_shard: 11, non_finite_volume: 2 },
          },
          val: { excluded_at_index: 1, bad_at_read: 1, budget: 100, by_reason: { bad_label: 1, non_finite_volume: 1 } },
        },
      },
    ]);
    const html = runReportHtml(loadRunData(dir), { created: new Date(0) });
    expect(html).to.contain('<h2>Data: excluded and bad samples</h2>');
    expect(html).to.contain(
      'training: 13 sample(s) lost (11 excluded at index time, 2 skipped while reading; budget 100)',
    );
    expect(html).to.contain(
      'validation: 2 sample(s) lost (1 excluded at index time, 1 skipped while reading; budget 100)',
    );
    const rows = [
      ...html.matchAll(/<tr data-reason="([a-z_]+)"><td[^>]*>\1<\/td><td>(\d+)<\/td><td>(\d+)<\/td><\/tr>/g),
    ].map((m) => [m[1], Number(m[2]), Number(m[3])]);
    expect(rows).to.deep.equal([
      ['bad_label', 0, 1],
      ['non_finite_volume', 2, 1],
      ['truncated_shard', 11, 0],
    ]);
  });

  it('says so when nothing was lost, and has no data section without an end event', () => {
    write([
      {
        type: 'end',
        step: 1,
        status: 'completed',
        bad_samples: { train: { excluded_at_index: 0, bad_at_read: 0, budget: 5, by_reason: {} } },
      },
    ]);
    expect(runReportHtml(loadRunData(dir))).to.contain('No sample was excluded or skipped.');
    write([{ type: 'train', step: 1, loss: 1 }]);
    expect(runReportHtml(loadRunData(dir))).to.not.contain('Data: excluded and bad samples');
  });
});
