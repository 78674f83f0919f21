// Streams on demand, tried by hand against a running demo server, as a new
// user would (issue 10's "Done when"; PROTOCOL.md):
//
//   node --experimental-websocket scripts/on-demand-check.mjs HOST:PORT
//
// Prints one line per check and exits 1 if any fails. Every wait is bounded.

const addr = process.argv[2];
if (!addr) {
  console.error('usage: node --experimental-websocket scripts/on-demand-check.mjs HOST:PORT');
  process.exit(2);
}
const url = `ws://${addr}/ws/`;
const WAIT = 5000;

/** A client that queues what it receives and can wait for a matching frame. */
async function client() {
  const ws = new WebSocket(url);
  const frames = [];
  let wake = null;
  ws.addEventListener('message', (event) => {
    frames.push(JSON.parse(event.data));
    if (wake) wake();
  });
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)), { once: true });
  });
  return {
    send: (frame) => ws.send(JSON.stringify(frame)),
    /** The next frame for which `match` holds (others are kept). */
    async next(match = () => true, wait = WAIT) {
      const deadline = Date.now() + wait;
      for (;;) {
        const at = frames.findIndex(match);
        if (at >= 0) return frames.splice(at, 1)[0];
        const left = deadline - Date.now();
        if (left <= 0) return null;
        await new Promise((resolve) => {
          wake = resolve;
          setTimeout(resolve, left);
        });
        wake = null;
      }
    },
    pending: () => frames.length,
    close: () => ws.close(1000),
  };
}

let failed = 0;
function check(what, ok, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? `: ${detail}` : ''}`);
  if (!ok) failed += 1;
}
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const on = (stream) => (f) => f.stream === stream && 'payload' in f;

// Two clients in room:lobby; after one unsubscribes it hears nothing more.
{
  const [ann, bob] = [await client(), await client()];
  for (const c of [ann, bob]) c.send({ subscribe: 'room:lobby', ref: 's' });
  const subscribed = await Promise.all([ann, bob].map((c) => c.next((f) => f.subscribed)));
  check('two clients subscribe to room:lobby', subscribed.every((f) => same(f, { subscribed: 'room:lobby', ref: 's' })), JSON.stringify(subscribed));
  ann.send({ stream: 'room:lobby', payload: { text: 'hi' } });
  const heard = await Promise.all([ann, bob].map((c) => c.next(on('room:lobby'))));
  check('both hear a message one of them sends', heard.every((f) => same(f?.payload, { text: 'hi' })), JSON.stringify(heard));
  bob.send({ unsubscribe: 'room:lobby', ref: 'u' });
  const unsub = await bob.next((f) => f.unsubscribed);
  check('unsubscribe is answered', same(unsub, { unsubscribed: 'room:lobby', ref: 'u' }), JSON.stringify(unsub));
  ann.send({ stream: 'room:lobby', payload: 'after' });
  await ann.next(on('room:lobby'));
  const late = await bob.next(() => true, 500);
  check('after unsubscribing it hears nothing more', late === null, JSON.stringify(late));
  ann.close();
  bob.close();
}

// ticker:ACME at 100 ms: seq 1, 2, 3 in order within a second; stops after unsubscribe.
{
  const c = await client();
  const started = Date.now();
  c.send({ subscribe: 'ticker:ACME', params: { interval_ms: 100 }, ref: 1 });
  await c.next((f) => f.subscribed);
  const seqs = [];
  for (let i = 0; i < 3; i += 1) seqs.push((await c.next(on('ticker:ACME')))?.payload);
  const took = Date.now() - started;
  check('ticker:ACME delivers seq 1, 2, 3 in order within a second',
    same(seqs, [1, 2, 3].map((seq) => ({ symbol: 'ACME', seq }))) && took < 1000, `${JSON.stringify(seqs)} in ${took} ms`);
  c.send({ unsubscribe: 'ticker:ACME' });
  await c.next((f) => f.unsubscribed);
  const more = await c.next(on('ticker:ACME'), 500);
  check('the ticker stops after unsubscribe', more === null, JSON.stringify(more));
  c.close();
}

// Refs on a reply and on an error; ping; the 129th stream; closeafterfirst; the implicit subscribe.
{
  const c = await client();
  c.send({ stream: 'echostream', payload: { n: 1 }, ref: 'e1' });
  const echo = await c.next(on('echostream'));
  check('a ref\'d echo comes back with its ref', same(echo, { stream: 'echostream', payload: { n: 1 }, ref: 'e1' }), JSON.stringify(echo));
  c.send({ stream: 'nope', payload: 1, ref: 7 });
  const bad = await c.next((f) => f.error);
  check('a ref\'d bad frame comes back with its ref', bad?.error?.code === 'unknown_stream' && bad.ref === 7, JSON.stringify(bad));
  c.send({ ping: 42 });
  const pong = await c.next((f) => 'pong' in f);
  check('{"ping": 42} gets {"pong": 42}', same(pong, { pong: 42 }), JSON.stringify(pong));

  for (let i = 1; i <= 129; i += 1) c.send({ subscribe: `room:n${i}`, ref: i });
  const answers = [];
  for (let i = 1; i <= 129; i += 1) answers.push(await c.next((f) => f.ref === i));
  const accepted = answers.slice(0, 128).every((f) => f?.subscribed === `room:n${f.ref}`);
  const last = answers[128];
  check('128 streams start and the 129th gets too_many_streams',
    accepted && last?.error?.code === 'too_many_streams', JSON.stringify(last));
  c.close();

  const d = await client();
  d.send({ subscribe: 'closeafterfirst', ref: 'c1' });
  await d.next((f) => f.subscribed);
  d.send({ stream: 'closeafterfirst', payload: 'once' });
  const first = await d.next(() => true);
  const closed = await d.next(() => true);
  check('closeafterfirst: the echo, then closed with 1000',
    same(first, { stream: 'closeafterfirst', payload: 'once' }) && same(closed, { closed: 'closeafterfirst', code: 1000, reason: '' }),
    `${JSON.stringify(first)} ${JSON.stringify(closed)}`);
  d.send({ subscribe: 'closeafterfirst', ref: 'c2' });
  const again = await d.next((f) => f.ref === 'c2');
  d.send({ stream: 'closeafterfirst', payload: 'twice' });
  const echoed = await d.next(on('closeafterfirst'));
  check('subscribing again starts it afresh', again?.subscribed === 'closeafterfirst' && echoed?.payload === 'twice', JSON.stringify(again));

  d.send({ stream: 'room:x', payload: { hello: 'room' } });
  const implicit = await d.next(on('room:x'));
  check('a data frame to room:x without subscribing is delivered', same(implicit?.payload, { hello: 'room' }), JSON.stringify(implicit));
  d.close();
}

console.log(failed ? `${failed} check(s) failed` : 'all checks passed');
process.exit(failed ? 1 : 0);
