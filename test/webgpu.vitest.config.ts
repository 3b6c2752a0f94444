import { defineConfig } from 'vitest/config';

/** The WebGPU suite alone, run by test/webgpu.test.ts in a child process (see there). */
export default defineConfig({
  test: {
    include: ['test/webgpu.suite.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 1,
    minWorkers: 1,
  },
});
