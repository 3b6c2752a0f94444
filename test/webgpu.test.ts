/**
 * The WebGPU suite (test/webgpu.suite.ts: the webgpu backend against the cpu backend on both LeNets, worker threads,
 * clean shutdown) runs in a child vitest process. CI's WebGPU adapter is Mesa's lavapipe, a software Vulkan driver
 * whose adapter makes Dawn print warnings from native code straight to the process's stderr; in the child they are
 * captured with the rest of its output instead of reaching this run's. Every test of the suite must pass.
 */
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface JsonReport {
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  testResults: { message?: string; assertionResults: { fullName: string; status: string; failureMessages: string[] }[] }[];
}

describe('webgpu (in a child process)', () => {
  it('every test of test/webgpu.suite.ts passes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'prunus-webgpu-'));
    const out = join(dir, 'report.json');
    const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
    try {
      const r = spawnSync(process.execPath, [vitest, 'run', '--config', 'test/webgpu.vitest.config.ts', '--reporter=json', `--outputFile=${out}`], {
        cwd: repoRoot,
        encoding: 'utf8',
        timeout: 600_000,
      });
      let report: JsonReport;
      try {
        report = JSON.parse(readFileSync(out, 'utf8')) as JsonReport;
      } catch {
        throw new Error(`the webgpu suite wrote no report (exit ${r.status}):\n${(r.stderr ?? '').slice(-3000)}`);
      }
      const failed = report.testResults.flatMap((f) => [
        ...(f.message ? [f.message] : []),
        ...f.assertionResults.filter((a) => a.status !== 'passed').map((a) => `${a.fullName}: ${a.status}\n${a.failureMessages.join('\n').slice(0, 2000)}`),
      ]);
      expect(failed, failed.join('\n\n')).toEqual([]);
      expect(report.numFailedTests).toBe(0);
      expect(report.numPassedTests).toBe(report.numTotalTests);
      expect(report.numTotalTests).toBeGreaterThanOrEqual(7);
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
