// The client against a fake socket, with Node's mock timers: backoff and
// jitter, every close code's decision, refs, ref counting, queueing,
// resubscription, ping and timeouts.
import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { Multiplexer, ChanmuxError } from '../dist/index.js';

/** A WebSocket the test drives: it records what the client sends. */
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    FakeSocket.all.push(this);
  }
  static get last() { return FakeSocket.all.at(-1); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code = 1005) { if (this.readyState < 3) { this.readyState = 3; this.onclose?.({ code, reason: '' }); } }
  // The server's side:
  open() { this.readyState = 1; this.onopen?.({}); }
  receive(frame) { this.onmessage?.({ data: JSON.stringify(frame) }); }
  drop(code) { this.readyState = 3; this.onclose?.({ code, reason: '' }); }
  /** A connection that fails as Node 20's does: an error, and no close. */
  fail() { this.onerror?.({}); }
  /** Answers every subscribe sent so far (and not answered yet) with `subscribed`. */
  acceptSubscribes() {
    for (const f of this.sent.filter((f) => f.subscribe && !f.answered)) {
      f.answered = true;
      this.receive({ subscribed: f.subscribe, ref: f.ref });
    }
  }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

function mux(options = {}) {
  return new Multiplexer('ws://test/ws/', { WebSocket: FakeSocket, random: () => 0.5, pingInterval: 0, ...options });
}

/** A multiplexer whose first socket has opened. */
async function opened(options = {}) {
  const m = mux(options);
  FakeSocket.last.open();
  await settle();
  return m;
}

beforeEach(() => {
  FakeSocket.all = [];
  mock.timers.enable({ apis: ['setTimeout'] });
});
afterEach(() => mock.timers.reset());

test('connects at once and reports open', async () => {
  const m = mux();
  const states = [];
  m.onState((s) => states.push(s));
  assert.equal(m.state, 'connecting');
  FakeSocket.last.open();
  await settle();
  assert.deepEqual(states, ['open']);
  assert.equal(FakeSocket.last.url, 'ws://test/ws/');
});

test('each close code decides whether to reconnect', async () => {
  for (const [code, again] of [[1000, false], [1008, false], [4000, false], [4321, false], [4999, false], [1002, false],
    [1001, true], [1006, true], [1011, true], [1012, true], [1013, true], [1014, true]]) {
    FakeSocket.all = [];
    const m = mux();
    FakeSocket.last.open();
    await settle();
    FakeSocket.last.drop(code);
    assert.equal(m.state, again ? 'reconnecting' : 'closed', `code ${code}`);
    mock.timers.tick(60000);
    assert.equal(FakeSocket.all.length, again ? 2 : 1, `code ${code}`);
    m.close();
  }
  // An option decides otherwise.
  FakeSocket.all = [];
  const m = mux({ shouldReconnect: (code) => code === 4001 });
  FakeSocket.last.open();
  await settle();
  FakeSocket.last.drop(4001);
  assert.equal(m.state, 'reconnecting');
  m.close();
});

test('backoff is full jitter between the two delays, doubling up to the maximum', async () => {
  for (const [random, expected] of [[0, [500, 500, 500, 500]], [0.999999, [1000, 2000, 4000, 8000]]]) {
    FakeSocket.all = [];
    const m = mux({ random: () => random, minReconnectDelay: 500, maxReconnectDelay: 3000 });
    const waits = [];
    for (let i = 0; i < 4; i += 1) {
      FakeSocket.last.drop(1006);
      const before = FakeSocket.all.length;
      let waited = 0;
      while (FakeSocket.all.length === before && waited < 60000) { mock.timers.tick(1); waited += 1; }
      waits.push(waited);
    }
    const capped = expected.map((w) => Math.min(w, 3000));
    waits.forEach((w, i) => assert.ok(Math.abs(w - capped[i]) <= 1, `attempt ${i}: waited ${w}, expected ${capped[i]} (random ${random})`));
    m.close();
  }
});

test('a connection that fails with only an error event is retried', async () => {
  const m = mux({ minReconnectDelay: 10, maxReconnectDelay: 10 });
  FakeSocket.last.fail();
  assert.equal(m.state, 'reconnecting');
  mock.timers.tick(10);
  assert.equal(FakeSocket.all.length, 2);
  FakeSocket.last.fail();
  mock.timers.tick(10);
  assert.equal(FakeSocket.all.length, 3);
  FakeSocket.last.open();
  await settle();
  assert.equal(m.state, 'open');
  m.close();
});

test('a successful open resets the backoff', async () => {
  const m = mux({ random: () => 0.999999, minReconnectDelay: 100, maxReconnectDelay: 10000 });
  FakeSocket.last.drop(1006);
  mock.timers.tick(200);
  FakeSocket.last.drop(1006);
  mock.timers.tick(400);
  FakeSocket.last.open();
  await settle();
  FakeSocket.last.drop(1006);
  const before = FakeSocket.all.length;
  mock.timers.tick(199);
  assert.equal(FakeSocket.all.length, before, 'the wait starts again from its first');
  mock.timers.tick(1);
  assert.equal(FakeSocket.all.length, before + 1);
  m.close();
});

test('requests resolve with the reply carrying their ref; other frames go to onMessage', async () => {
  const m = await opened();
  const echo = m.stream('echostream');
  const heard = [];
  echo.onMessage((p) => heard.push(p));
  const a = echo.request({ n: 1 });
  const b = echo.request({ n: 2 });
  const [fa, fb] = FakeSocket.last.sent;
  assert.deepEqual([fa.stream, fa.payload], ['echostream', { n: 1 }]);
  assert.notEqual(fa.ref, fb.ref);
  FakeSocket.last.receive({ stream: 'echostream', payload: 'pushed' });
  FakeSocket.last.receive({ stream: 'echostream', payload: { n: 2 }, ref: fb.ref });
  FakeSocket.last.receive({ stream: 'echostream', payload: { n: 1 }, ref: fa.ref });
  assert.deepEqual(await a, { n: 1 });
  assert.deepEqual(await b, { n: 2 });
  assert.deepEqual(heard, ['pushed']);
});

test('an error frame with a request\'s ref rejects it with the code', async () => {
  const m = await opened();
  const req = m.stream('nope').request(1);
  const { ref } = FakeSocket.last.sent[0];
  FakeSocket.last.receive({ error: { code: 'unknown_stream', message: 'no stream named "nope"' }, stream: 'nope', ref });
  await assert.rejects(req, (e) => e instanceof ChanmuxError && e.code === 'unknown_stream' && e.stream === 'nope');
});

test('error frames without a ref go to the stream\'s handles, or to onError', async () => {
  const m = await opened();
  const seen = [];
  m.stream('echostream').onError((e) => seen.push(`stream ${e.code}`));
  m.onError((e) => seen.push(`mux ${e.code}`));
  FakeSocket.last.receive({ error: { code: 'stream_overloaded', message: 'm' }, stream: 'echostream' });
  FakeSocket.last.receive({ error: { code: 'rate_limited', message: 'm' }, stream: null });
  assert.deepEqual(seen, ['stream stream_overloaded', 'mux rate_limited']);
});

test('requests time out, and reject when the connection drops', async () => {
  const m = await opened({ requestTimeout: 1000, minReconnectDelay: 10 });
  const s = m.stream('echostream');
  const slow = s.request(1, { timeout: 50 });
  mock.timers.tick(50);
  await assert.rejects(slow, (e) => e.code === 'timeout');
  const cut = s.request(2);
  FakeSocket.last.drop(1006);
  await assert.rejects(cut, (e) => e.code === 'disconnected');
  m.close();
});

test('two subscribes to one name share one server subscription; the last unsubscribe ends it', async () => {
  const m = await opened();
  const first = m.subscribe('room:lobby');
  const second = m.subscribe('room:lobby');
  await settle();
  const subs = FakeSocket.last.sent.filter((f) => f.subscribe);
  assert.equal(subs.length, 1);
  FakeSocket.last.acceptSubscribes();
  const [a, b] = await Promise.all([first, second]);
  const heard = [];
  a.onMessage((p) => heard.push(`a ${p}`));
  b.onMessage((p) => heard.push(`b ${p}`));
  FakeSocket.last.receive({ stream: 'room:lobby', payload: 'hi' });
  assert.deepEqual(heard, ['a hi', 'b hi']);
  a.unsubscribe();
  a.unsubscribe();
  assert.equal(FakeSocket.last.sent.filter((f) => f.unsubscribe).length, 0);
  b.unsubscribe();
  assert.deepEqual(FakeSocket.last.sent.filter((f) => f.unsubscribe).map((f) => f.unsubscribe), ['room:lobby']);
  // A third subscribe is a new server subscription.
  void m.subscribe('room:lobby');
  assert.equal(FakeSocket.last.sent.filter((f) => f.subscribe).length, 2);
});

test('a refused subscribe rejects with the error frame\'s code and message', async () => {
  const m = await opened();
  const sub = m.subscribe('vip:1', { pass: 'x' });
  const frame = FakeSocket.last.sent[0];
  assert.deepEqual(frame.params, { pass: 'x' });
  FakeSocket.last.receive({ error: { code: 'subscription_refused', message: 'members only' }, stream: 'vip:1', ref: frame.ref });
  await assert.rejects(sub, (e) => e.code === 'subscription_refused' && e.message === 'members only');
});

test('on reconnect it resubscribes in order with params, and reports open only then; queued sends follow', async () => {
  const m = await opened({ minReconnectDelay: 10, maxReconnectDelay: 10 });
  const p1 = m.subscribe('room:a', { n: 1 });
  const p2 = m.subscribe('ticker:X', { interval_ms: 100 });
  FakeSocket.last.acceptSubscribes();
  const [a] = await Promise.all([p1, p2]);
  const states = [];
  m.onState((s) => states.push(s));
  FakeSocket.last.drop(1012);
  a.send('queued 1');
  a.send('queued 2');
  mock.timers.tick(10);
  const next = FakeSocket.last;
  next.open();
  await settle();
  assert.deepEqual(next.sent.map((f) => [f.subscribe, f.params]), [['room:a', { n: 1 }], ['ticker:X', { interval_ms: 100 }]]);
  assert.deepEqual(states, ['reconnecting'], 'not open before the answers');
  next.acceptSubscribes();
  await settle();
  assert.deepEqual(states, ['reconnecting', 'open']);
  assert.deepEqual(next.sent.slice(2).map((f) => f.payload), ['queued 1', 'queued 2']);
  const heard = [];
  a.onMessage((p) => heard.push(p));
  next.receive({ stream: 'room:a', payload: 'again' });
  assert.deepEqual(heard, ['again']);
});

test('a subscribe or unsubscribe made while others are being resubscribed goes out at once', async () => {
  const m = await opened({ minReconnectDelay: 10, maxReconnectDelay: 10 });
  const early = m.subscribe('room:a');
  FakeSocket.last.acceptSubscribes();
  const a = await early;
  FakeSocket.last.drop(1006);
  mock.timers.tick(10);
  FakeSocket.last.open();
  // room:a is being resubscribed: not open yet.
  assert.equal(m.state, 'reconnecting');
  const late = m.subscribe('room:b');
  a.unsubscribe();
  assert.deepEqual(FakeSocket.last.sent.map((f) => f.subscribe ?? `-${f.unsubscribe}`), ['room:a', 'room:b', '-room:a']);
  FakeSocket.last.acceptSubscribes();
  assert.equal((await late).name, 'room:b');
  await settle();
  assert.equal(m.state, 'open');
});

test('handles on an eager stream do not count towards a subscription of the same name', async () => {
  const m = await opened();
  const eager = m.stream('room:x');
  const heard = [];
  eager.onMessage((p) => heard.push(`eager ${p}`));
  const sub = m.subscribe('room:x');
  FakeSocket.last.acceptSubscribes();
  const handle = await sub;
  handle.onMessage((p) => heard.push(`sub ${p}`));
  FakeSocket.last.receive({ stream: 'room:x', payload: 1 });
  assert.deepEqual(heard, ['sub 1', 'eager 1']);
  handle.unsubscribe();
  assert.deepEqual(FakeSocket.last.sent.filter((f) => f.unsubscribe).map((f) => f.unsubscribe), ['room:x']);
  m.stream('room:y');
  const y = m.subscribe('room:y');
  FakeSocket.last.acceptSubscribes();
  (await y).unsubscribe();
  assert.deepEqual(FakeSocket.last.sent.filter((f) => f.unsubscribe).map((f) => f.unsubscribe), ['room:x', 'room:y']);
});

test('state changes carry the close code that caused them', async () => {
  const m = mux({ minReconnectDelay: 10 });
  const seen = [];
  m.onState((state, code) => seen.push([state, code]));
  FakeSocket.last.open();
  await settle();
  FakeSocket.last.drop(1012);
  mock.timers.tick(20);
  FakeSocket.last.open();
  await settle();
  FakeSocket.last.drop(4001);
  assert.deepEqual(seen, [['open', undefined], ['reconnecting', 1012], ['open', undefined], ['closed', 4001]]);
});

test('a subscribe made while disconnected goes out with the resubscription', async () => {
  const m = mux({ minReconnectDelay: 10, maxReconnectDelay: 10 });
  const pending = m.subscribe('room:late');
  FakeSocket.last.open();
  await settle();
  assert.equal(FakeSocket.last.sent.filter((f) => f.subscribe === 'room:late').length, 1);
  FakeSocket.last.acceptSubscribes();
  assert.equal((await pending).name, 'room:late');
});

test('send queues up to maxQueued while disconnected, then throws', async () => {
  const m = mux({ maxQueued: 2 });
  const s = m.stream('echostream');
  s.send(1);
  s.send(2);
  assert.throws(() => s.send(3), (e) => e.code === 'queue_full');
  FakeSocket.last.open();
  await settle();
  assert.deepEqual(FakeSocket.last.sent.map((f) => f.payload), [1, 2]);
});

test('closed frames end a subscription and reach its handles', async () => {
  const m = await opened();
  const p = m.subscribe('closeafterfirst');
  FakeSocket.last.acceptSubscribes();
  const h = await p;
  const closed = [];
  h.onClosed((code, reason) => closed.push([code, reason]));
  FakeSocket.last.receive({ closed: 'closeafterfirst', code: 1000, reason: '' });
  assert.deepEqual(closed, [[1000, '']]);
  // Not resubscribed after a reconnect.
  FakeSocket.last.drop(1006);
  mock.timers.tick(60000);
  FakeSocket.last.open();
  await settle();
  assert.equal(FakeSocket.last.sent.filter((f) => f.subscribe).length, 0);
  m.close();
});

test('pings only after silence, and a missed pong reconnects', async () => {
  const m = await opened({ pingInterval: 1000, pongTimeout: 500, minReconnectDelay: 10, maxReconnectDelay: 10 });
  mock.timers.tick(900);
  FakeSocket.last.receive({ stream: 'x', payload: 1 });
  mock.timers.tick(900);
  assert.equal(FakeSocket.last.sent.filter((f) => 'ping' in f).length, 0, 'traffic postpones the ping');
  mock.timers.tick(100);
  assert.equal(FakeSocket.last.sent.filter((f) => 'ping' in f).length, 1);
  const ping = FakeSocket.last.sent.find((f) => 'ping' in f);
  FakeSocket.last.receive({ pong: ping.ping });
  mock.timers.tick(999);
  assert.equal(m.state, 'open');
  mock.timers.tick(1);
  assert.equal(FakeSocket.last.sent.filter((f) => 'ping' in f).length, 2);
  mock.timers.tick(500);
  assert.equal(m.state, 'reconnecting', 'no pong: the socket is dropped');
  mock.timers.tick(10);
  assert.equal(FakeSocket.all.length, 2);
  m.close();
});

test('close() is final: no reconnection, pending calls reject', async () => {
  const m = await opened();
  const req = m.stream('echostream').request(1);
  m.close();
  await assert.rejects(req, (e) => e.code === 'closed');
  mock.timers.tick(60000);
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(m.state, 'closed');
  await assert.rejects(m.subscribe('room:x'), (e) => e.code === 'closed');
});

test('a request that settles while queued is not sent; sends and requests after close() fail at once', async () => {
  const m = mux({ minReconnectDelay: 10, maxReconnectDelay: 10 });
  const s = m.stream('echostream');
  const late = s.request('late', { timeout: 50 });
  s.send('kept');
  mock.timers.tick(50);
  await assert.rejects(late, (e) => e.code === 'timeout');
  FakeSocket.last.open();
  await settle();
  assert.deepEqual(FakeSocket.last.sent.map((f) => f.payload), ['kept']);
  m.close();
  await assert.rejects(s.request(1), (e) => e.code === 'closed');
  assert.throws(() => s.send(1), (e) => e.code === 'closed');
});

test('a subscribe that times out unsubscribes, so the name can be subscribed again', async () => {
  const m = await opened({ requestTimeout: 100 });
  const slow = m.subscribe('room:slow');
  mock.timers.tick(100);
  await assert.rejects(slow, (e) => e.code === 'timeout');
  assert.deepEqual(FakeSocket.last.sent.map((f) => f.subscribe ?? `-${f.unsubscribe}`), ['room:slow', '-room:slow']);
  const again = m.subscribe('room:slow');
  assert.equal(FakeSocket.last.sent.filter((f) => f.subscribe === 'room:slow').length, 2);
  m.close();
  await assert.rejects(again, (e) => e.code === 'closed');
});

test('a closed frame for an earlier subscription does not end a newer one', async () => {
  const m = await opened();
  const first = m.subscribe('room:a');
  FakeSocket.last.acceptSubscribes();
  (await first).unsubscribe();
  const second = m.subscribe('room:a');
  FakeSocket.last.receive({ closed: 'room:a', code: 1000, reason: '' });
  FakeSocket.last.acceptSubscribes();
  const handle = await second;
  const heard = [];
  handle.onMessage((p) => heard.push(p));
  FakeSocket.last.receive({ stream: 'room:a', payload: 1 });
  assert.deepEqual(heard, [1]);
});

test('answers to an unsubscribe reach no later subscription', async () => {
  const m = await opened();
  const first = m.subscribe('room:a');
  FakeSocket.last.acceptSubscribes();
  (await first).unsubscribe();
  const unsub = FakeSocket.last.sent.find((f) => f.unsubscribe);
  assert.ok(unsub.ref !== undefined);
  const again = m.subscribe('room:a');
  FakeSocket.last.acceptSubscribes();
  const handle = await again;
  const errors = [];
  handle.onError((e) => errors.push(e.code));
  m.onError((e) => errors.push(`mux ${e.code}`));
  FakeSocket.last.receive({ error: { code: 'not_subscribed', message: 'm' }, stream: 'room:a', ref: unsub.ref });
  assert.deepEqual(errors, []);
});

test('queued frames go out before what an open callback sends; a throwing callback does not break the client', async () => {
  const m = mux();
  const s = m.stream('echostream');
  s.send('queued');
  m.onState((state) => {
    if (state === 'open') s.send('from the callback');
  });
  m.onState(() => {
    throw new Error('an application bug');
  });
  // What a callback throws is rethrown from a microtask of its own: caught here.
  const thrown = [];
  const queue = globalThis.queueMicrotask;
  globalThis.queueMicrotask = (task) => {
    try { task(); } catch (e) { thrown.push(e.message); }
  };
  try {
    FakeSocket.last.open();
    await settle();
  } finally {
    globalThis.queueMicrotask = queue;
  }
  assert.deepEqual(FakeSocket.last.sent.map((f) => f.payload), ['queued', 'from the callback']);
  assert.equal(m.state, 'open');
  assert.deepEqual(thrown, ['an application bug']);
});

test('non-object frames are ignored', async () => {
  const m = await opened();
  for (const text of ['null', '3', '"x"', '[1]']) FakeSocket.last.onmessage({ data: text });
  assert.equal(m.state, 'open');
});
