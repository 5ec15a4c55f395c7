import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LiveLine } from './progress.js';

function terminal(columns = 80) {
  const out = Object.assign(new PassThrough(), { columns });
  const chunks: string[] = [];
  out.on('data', (c: Buffer) => chunks.push(c.toString()));
  return { out, text: () => chunks.join('') };
}

describe('LiveLine', () => {
  it('draws elapsed, done/total and the item in place; a lasting line clears it and it comes back', () => {
    let t = 1000;
    const term = terminal();
    const live = new LiveLine(term.out, true, () => t);
    t = 2500;
    live.update({ label: '[cp311]', done: 1, total: 57, item: 'building numpy' });
    live.log('[cp311] added numpy-2.0-cp311-cp311-linux_x86_64.whl');
    t = 61_000 + 1000 + 5000;
    live.update({ label: '[cp311]', done: 2, total: 57, item: '' });
    live.finish();
    expect(term.text()).toBe(
      '\r\x1b[2K[cp311] 1/57 1.5s building numpy' +
        '\r\x1b[2K[cp311] added numpy-2.0-cp311-cp311-linux_x86_64.whl\n' +
        '\r\x1b[2K[cp311] 1/57 1.5s building numpy' +
        '\r\x1b[2K[cp311] 2/57 1m06s' +
        '\r\x1b[2K',
    );
  });

  it('fits the terminal width', () => {
    const term = terminal(20);
    const live = new LiveLine(term.out, true, () => 0);
    expect(live.render({ label: '[cp311]', done: 3, total: 9, item: 'building a-very-long-name' })).toBe('[cp311] 3/9 0.0s b…');
  });

  it('off (pipes, CI): lasting lines only, no control characters', () => {
    const term = terminal();
    const live = new LiveLine(term.out, false);
    live.update({ label: '[cp311]', done: 1, total: 2, item: 'x' });
    live.log('plain');
    live.finish();
    expect(term.text()).toBe('plain\n');
  });
});
