// Copies the built client to the demo server's static files, which serve it
// to the demo page at /chanmux-client.js (see crates/chanmux-server/src/lib.rs).
import { copyFileSync } from 'node:fs';

copyFileSync(
  new URL('../dist/index.js', import.meta.url),
  new URL('../../../crates/chanmux-server/static/chanmux-client.js', import.meta.url),
);
