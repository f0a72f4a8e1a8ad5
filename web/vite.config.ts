import { defineConfig } from 'vite';

// Relative asset URLs: the viewer works at `/` and behind a reverse proxy's prefix (/deforma/) alike.
export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
