import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two cores on CI: tensor-heavy test files are CPU-bound, more forks only contend.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
