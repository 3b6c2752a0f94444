import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtempSync, rmSync, readFileSync, readdirSync, renameSync, mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDirAtomic, recoverDir, writeFileAtomic } from '../foundation/atomic.js';

// A pid no process has (Linux pid_max is at most 2^22).
const DEAD_PID = 4_194_304 + 12_345;

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'prunus-atomic-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const fillWith = (text: string) => (tmp: string) => writeFileSync(join(tmp, 'a.txt'), text);

describe('writeFileAtomic', () => {
  it('replaces the file and leaves no temporary behind', () => {
    const p = join(root, 'f.json');
    writeFileAtomic(p, 'one');
    writeFileAtomic(p, 'two');
    expect(readFileSync(p, 'utf8')).toBe('two');
    expect(readdirSync(root)).toEqual(['f.json']);
  });
});

describe('writeDirAtomic', () => {
  it('creates, replaces, and leaves only the target', () => {
    const d = join(root, 'model');
    writeDirAtomic(d, fillWith('v1'));
    writeDirAtomic(d, fillWith('v2'));
    expect(readFileSync(join(d, 'a.txt'), 'utf8')).toBe('v2');
    expect(readdirSync(root)).toEqual(['model']);
  });

  it('a failing fill leaves the old folder and nothing else', () => {
    const d = join(root, 'model');
    writeDirAtomic(d, fillWith('v1'));
    expect(() =>
      writeDirAtomic(d, (tmp) => {
        fillWith('half')(tmp);
        throw new Error('disk full');
      }),
    ).toThrow('disk full');
    expect(readFileSync(join(d, 'a.txt'), 'utf8')).toBe('v1');
    expect(readdirSync(root)).toEqual(['model']);
  });
});

describe('recoverDir (a kill inside writeDirAtomic)', () => {
  /** The state a SIGKILL between "old folder aside" and "new folder in" leaves: no target, the old one aside, the new one in its temporary. */
  function killedBetweenRenames(pid: number): string {
    const d = join(root, 'model');
    writeDirAtomic(d, fillWith('v1'));
    renameSync(d, join(root, `.model.${pid}.7.tmp.old`));
    mkdirSync(join(root, `.model.${pid}.7.tmp`));
    writeFileSync(join(root, `.model.${pid}.7.tmp`, 'a.txt'), 'v2');
    return d;
  }

  it('puts the last complete folder back and removes the dead writer\'s leftovers', () => {
    const d = killedBetweenRenames(DEAD_PID);
    expect(existsSync(d)).toBe(false);
    expect(recoverDir(d)).toBe(true);
    expect(readFileSync(join(d, 'a.txt'), 'utf8')).toBe('v1');
    expect(readdirSync(root)).toEqual(['model']);
    expect(recoverDir(d)).toBe(false);
  });

  it('the next writeDirAtomic repairs first, then replaces', () => {
    const d = killedBetweenRenames(DEAD_PID);
    writeDirAtomic(d, fillWith('v3'));
    expect(readFileSync(join(d, 'a.txt'), 'utf8')).toBe('v3');
    expect(readdirSync(root)).toEqual(['model']);
  });

  it('leaves a live writer\'s folders alone (a concurrent replace in progress)', () => {
    const d = killedBetweenRenames(process.pid);
    expect(recoverDir(d)).toBe(false);
    expect(existsSync(d)).toBe(false);
    expect(readdirSync(root).sort()).toEqual([`.model.${process.pid}.7.tmp`, `.model.${process.pid}.7.tmp.old`]);
  });

  it('removes a dead writer\'s half-filled temporary without touching the target or other names', () => {
    const d = join(root, 'model');
    writeDirAtomic(d, fillWith('v1'));
    mkdirSync(join(root, `.model.${DEAD_PID}.3.tmp`));
    mkdirSync(join(root, '.model-other.1.1.tmp'));
    expect(recoverDir(d)).toBe(false);
    expect(readdirSync(root).sort()).toEqual(['.model-other.1.1.tmp', 'model']);
  });
});

describe('loadModel after a kill inside saveModel', () => {
  it('reads the last complete model instead of reporting none', async () => {
    const { lenet300100 } = await import('../models/architectures.js');
    const { initParams, onesMasks } = await import('../models/params.js');
    const { saveModel, loadModel } = await import('../models/io.js');
    const { Rng } = await import('../foundation/rng.js');
    const arch = lenet300100();
    const params = initParams(arch, new Rng(3));
    const d = join(root, 'ref');
    saveModel(d, { arch, params, masks: onesMasks(arch) });
    renameSync(d, join(root, `.ref.${DEAD_PID}.0.tmp.old`));
    const loaded = loadModel(d).model;
    expect(Array.from(loaded.params.layers[2]!.weight)).toEqual(Array.from(params.layers[2]!.weight));
    expect(readdirSync(root)).toEqual(['ref']);
  });
});
