// The client's size budget: at most 4 KB minified and gzipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { transformSync } from 'esbuild';

const BUDGET = 4096;

test(`dist/index.js is at most ${BUDGET} bytes minified and gzipped`, () => {
  const source = readFileSync(new URL('../dist/index.js', import.meta.url), 'utf8');
  const { code } = transformSync(source, { minify: true, format: 'esm' });
  const size = gzipSync(code, { level: 9 }).length;
  console.log(`# size: ${size} bytes minified and gzipped (budget ${BUDGET})`);
  assert.ok(size <= BUDGET, `${size} bytes is over the budget of ${BUDGET}`);
});
