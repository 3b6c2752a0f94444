import { describe, it, expect } from 'vitest';
import { Writable } from 'node:stream';
import { createProgress, formatField } from '../src/progress.js';
import { pipelineProgress } from '../src/pipeline/cli-output.js';

class Capture extends Writable {
  chunks: string[] = [];
  isTTY: boolean;
  columns = 120;
  constructor(tty: boolean) {
    super();
    this.isTTY = tty;
  }
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.chunks.push(String(chunk));
    cb();
  }
  get text(): string {
    return this.chunks.join('');
  }
  // What cli-progress needs from a terminal stream.
  cursorTo(): boolean {
    return true;
  }
  clearLine(): boolean {
    return true;
  }
  clearScreenDown(): boolean {
    return true;
  }
  moveCursor(): boolean {
    return true;
  }
}

describe('progress', () => {
  it('not a TTY: plain lines, throttled, forced on phase changes and at stop, log lines in between', () => {
    const s = new Capture(false);
    let t = 0;
    const p = createProgress({ total: 400, label: 'search', stream: s, intervalMs: 1000, now: () => t });
    expect(p.mode).toBe('lines');
    p.update(0, { phase: 'pruning', compression: 1, accuracy: 0.99 });
    t = 100;
    p.update(50, { compression: 2.5 }); // within the interval: nothing
    t = 200;
    p.log('search at t=100: 3.1x');
    t = 300;
    p.update(100, { phase: 'adjusting', compression: 12.345 }); // phase change: a line now
    t = 2000;
    p.update(300, { accuracy: 0.9812 }); // interval passed
    p.stop();
    p.stop(); // idempotent
    p.update(400); // after stop: nothing
    expect(s.text.split('\n')).toEqual([
      'search: 0/400 | phase pruning | compression 1.0x | accuracy 99.00%',
      'search at t=100: 3.1x',
      'search: 100/400 | phase adjusting | compression 12.3x | accuracy 99.00%',
      'search: 300/400 | phase adjusting | compression 12.3x | accuracy 98.12%',
      '',
    ]);
    expect(s.text).not.toMatch(/\x1b/);
  });

  it('--json never draws a bar, even on a terminal; quiet prints nothing; stdout is refused', () => {
    const s = new Capture(true);
    const p = createProgress({ total: 10, label: 'sweep', stream: s, json: true, intervalMs: 0 });
    expect(p.mode).toBe('lines');
    p.update(3, { running: 2 });
    p.stop();
    expect(s.text).toBe('sweep: 3/10 | running 2\n');
    const q = new Capture(true);
    const quiet = createProgress({ total: 10, stream: q, quiet: true });
    quiet.update(5, { phase: 'x' });
    quiet.log('hello');
    quiet.stop();
    expect(quiet.mode).toBe('quiet');
    expect(q.text).toBe('');
    expect(() => createProgress({ total: 1, stream: process.stdout })).toThrow(/stdout/);
  });

  it('a TTY gets a live bar with the fields, and log lines above it', async () => {
    const s = new Capture(true);
    const p = createProgress({ total: 200, label: 'search', stream: s });
    expect(p.mode).toBe('bar');
    p.update(100, { phase: 'pruning', compression: 4.2 });
    p.log('search at t=100 over ip1,ip2');
    await new Promise((r) => setTimeout(r, 250));
    p.update(200, { compression: 8 });
    p.stop();
    const text = s.text;
    expect(text).toContain('search [============------------] 100/200 | phase pruning | compression 4.2x');
    expect(text).toContain('search [========================] 200/200 | phase pruning | compression 8.0x');
    expect(text).toContain('search at t=100 over ip1,ip2\n');
  });

  it('formats fields', () => {
    expect(formatField('accuracy', 0.98765)).toBe('accuracy 98.77%');
    expect(formatField('compression', 123.4)).toBe('compression 123x');
    expect(formatField('loss', 0.0123456)).toBe('loss 0.01235');
    expect(formatField('running', 2)).toBe('running 2');
    expect(formatField('failed', undefined)).toBe('');
    expect(formatField('accuracy', NaN)).toBe('');
  });
});

describe('pipelineProgress (search / resume / reproduce)', () => {
  it('not a TTY: phase changes and searches are lines; the total follows the phase; nothing on stdout', () => {
    const s = new Capture(false);
    const { hooks, stop } = pipelineProgress(false, { stream: s, intervalMs: 60_000 });
    hooks.onProgress!({ phase: 'reference', iteration: 25, total: 10000, compression: 1, accuracy: NaN });
    hooks.onProgress!({ phase: 'reference', iteration: 50, total: 10000, compression: 1, accuracy: NaN });
    hooks.onEvent!({ type: 'phase', iteration: 0, phase: 'pruning', reason: 'reference cached' } as never);
    hooks.onProgress!({ phase: 'pruning', iteration: 100, total: 15000, compression: 3.14159, accuracy: 0.9812 });
    hooks.onEvent!({ type: 'search', iteration: 100, layers: ['ip1', 'ip2'], compression: 4.5, accuracy: 0.97, accuracyFloor: 0.9612, evaluations: 1600, elapsedMs: 2500 } as never);
    stop();
    expect(s.text.split('\n')).toEqual([
      'prunus: 25/10000 | phase reference | compression 1.0x',
      'phase pruning at t=0 (reference cached)',
      'prunus: 100/15000 | phase pruning | compression 3.1x | val acc 98.12%',
      'search at t=100 over ip1,ip2: 4.5x, accuracy 97.00% (floor 96.12%), 1600 evaluations in 2.5 s',
      '',
    ]);
  });
});
