// The client against the real demo server binary, started by the test:
// requests, shared subscriptions, error codes, and a server restart on the
// same port that the client rides out on its own.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Multiplexer } from '../dist/index.js';

const SERVER = process.env.CHANMUX_SERVER_BIN ?? '../../target/release/chanmux-server';
const WAIT = 10000;

/** Starts the server on `addr`; resolves with the process and its address. */
function start(addr) {
  return new Promise((resolve, reject) => {
    const child = spawn(SERVER, ['--addr', addr], { stdio: ['ignore', 'pipe', 'ignore'] });
    const timer = setTimeout(() => reject(new Error('the server did not print its address')), WAIT);
    child.on('error', reject);
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      const match = /^listening on http:\/\/(\S+)$/.exec(line);
      if (match) resolve({ child, addr: match[1] });
      else reject(new Error(`unexpected first line: ${line}`));
    });
  });
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGKILL');
  });
}

/** Waits until `condition()` holds, at most `wait` ms. */
async function until(what, condition, wait = WAIT) {
  const deadline = Date.now() + wait;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

let server;
const clients = [];
function client(options = {}) {
  const m = new Multiplexer(`ws://${server.addr}/ws/`, { minReconnectDelay: 50, maxReconnectDelay: 200, ...options });
  clients.push(m);
  return m;
}
const opened = (m) => until('the client to open', () => m.state === 'open');

before(async () => {
  server = await start('127.0.0.1:0');
});

after(async () => {
  for (const m of clients) m.close();
  await stop(server.child);
});

test('a request on echostream resolves with its payload', async () => {
  const m = client();
  await opened(m);
  const reply = await m.stream('echostream').request({ hello: [1, 2.5, 'é'] });
  assert.deepEqual(reply, { hello: [1, 2.5, 'é'] });
});

test('a request to an unknown stream rejects with unknown_stream', async () => {
  const m = client();
  await opened(m);
  await assert.rejects(m.stream('nope').request(1), (e) => e.code === 'unknown_stream' && e.stream === 'nope');
});

test('a refused subscribe rejects with its code and reason', async () => {
  const m = client();
  await opened(m);
  await assert.rejects(m.subscribe('ticker:FAST', { interval_ms: 1 }),
    (e) => e.code === 'subscription_refused' && /interval_ms/.test(e.message));
});

test('two subscribes share one server subscription and both handles hear; a restart is ridden out', async () => {
  const m = client();
  const states = [];
  m.onState((s) => states.push(s));
  await opened(m);
  // A second subscription on the server would be refused (already_subscribed).
  const [a, b] = await Promise.all([m.subscribe('room:lobby'), m.subscribe('room:lobby')]);
  const heard = [];
  a.onMessage((p) => heard.push(['a', p]));
  b.onMessage((p) => heard.push(['b', p]));
  const sender = client();
  await opened(sender);
  sender.stream('room:lobby').send({ n: 1 });
  await until('both handles to hear', () => heard.length === 2);
  assert.deepEqual(heard, [['a', { n: 1 }], ['b', { n: 1 }]]);

  // The server is killed and started again on the same port: without the
  // application doing anything, the client reconnects and resubscribes.
  const port = server.addr;
  await stop(server.child);
  await until('the client to notice', () => m.state === 'reconnecting');
  // Down long enough for attempts to fail (refused connections) before it
  // comes back.
  await new Promise((resolve) => setTimeout(resolve, 600));
  server = await start(port);
  await until('the client to reopen', () => m.state === 'open');
  await until('the sender to reopen', () => sender.state === 'open');
  heard.length = 0;
  sender.stream('room:lobby').send({ n: 2 });
  await until('both handles to hear after the restart', () => heard.length === 2);
  assert.deepEqual(heard, [['a', { n: 2 }], ['b', { n: 2 }]]);
  assert.deepEqual(states.slice(0, 3), ['open', 'reconnecting', 'open']);
});

test('the ticker pushes in order to a subscription', async () => {
  const m = client();
  await opened(m);
  const ticker = await m.subscribe('ticker:ACME', { interval_ms: 50 });
  const seen = [];
  ticker.onMessage((p) => seen.push(p.seq));
  await until('three ticks', () => seen.length >= 3);
  assert.deepEqual(seen.slice(0, 3), [1, 2, 3]);
  ticker.unsubscribe();
});
