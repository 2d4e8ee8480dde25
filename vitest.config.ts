import { defineConfig } from 'vitest/config';

// Integration tests drive real zfs-fuse, sshd and kubectl; they run in separate forks and get generous
// timeouts, because a slow machine must not turn into a flaky test.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
