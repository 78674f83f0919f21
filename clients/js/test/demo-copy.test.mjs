// The demo server serves a copy of the built client (so `cargo run` needs
// no npm); it must be this build, byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

test('the demo server\'s copy of the client is the current build', () => {
  const built = readFileSync(new URL('../dist/index.js', import.meta.url), 'utf8');
  const copy = readFileSync(new URL('../../../crates/chanmux-server/static/chanmux-client.js', import.meta.url), 'utf8');
  assert.ok(copy === built, 'crates/chanmux-server/static/chanmux-client.js differs from dist/index.js: run `npm run build:demo` in clients/js');
});
