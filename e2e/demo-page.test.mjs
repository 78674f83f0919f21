// The demo page in a real headless Chromium against the real server binary:
// what a person sees when they try each stream, bad input, a restart of the
// server (which the page's client rides out on its own), and a shutdown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const SERVER = process.env.CHANMUX_SERVER_BIN ?? '../target/debug/chanmux-server';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Without the background-networking flags Chromium keeps dialling Google,
// which this machine's closed network refuses.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let server, serverExit, url, browser, page;

/** Starts the server on `addr` (by default a free loopback port); resolves with its URL. */
function startServer(addr = '127.0.0.1:0') {
  return new Promise((resolve, reject) => {
    const child = spawn(SERVER, ['--addr', addr], { stdio: ['ignore', 'pipe', 'inherit'] });
    // Listen from the start, so an exit is never missed.
    serverExit = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
    serverExit.then(({ code, signal }) => reject(new Error(`server exited (${code ?? signal}) before printing its address`)));
    const timer = setTimeout(() => reject(new Error('server did not print its address')), 20000);
    child.on('error', reject);
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      const match = /^listening on (http:\/\/\S+)$/.exec(line);
      if (!match) reject(new Error(`unexpected first line: ${line}`));
      else resolve({ child, url: match[1] });
    });
  });
}

before(async () => {
  ({ child: server, url } = await startServer());
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  page = await browser.newPage();
  await page.goto(url);
  await page.waitForSelector('#status[data-state="open"]', { timeout: 10000 });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGKILL');
});

/** `promise`, or a failure naming `what` after `ms`. */
function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, fail) => { timer = setTimeout(() => fail(new Error(`timed out waiting for ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

/** Sends the form and waits until the log has one more `kind` entry; returns its text. */
async function sendAndWait(stream, payload, kind, button = '#send') {
  const before = await page.locator(`#log .entry.${kind}`).count();
  await page.fill('#stream', stream);
  await page.fill('#payload', payload);
  await page.click(button);
  await page.waitForFunction(
    ([kind, n]) => document.querySelectorAll(`#log .entry.${kind}`).length > n,
    [kind, before],
    { timeout: 5000 },
  );
  return page.locator(`#log .entry.${kind}`).last();
}

test('echostream sends the payload back', async () => {
  const entry = await sendAndWait('echostream', '{"hello": "world"}', 'received');
  assert.equal(await entry.getAttribute('data-stream'), 'echostream');
  assert.match(await entry.textContent(), /"hello": "world"/);
});

test('altechostream answers with received and alt_value', async () => {
  const entry = await sendAndWait('altechostream', '{"n": 1}', 'received');
  assert.equal(await entry.getAttribute('data-stream'), 'altechostream');
  const text = await entry.textContent();
  assert.match(text, /"alt_value": 123/);
  assert.match(text, /"received": \{\s*"n": 1\s*\}/);
});

test('closeafterfirst answers once, then its stream refuses while echo goes on', async () => {
  await sendAndWait('closeafterfirst', '1', 'received');
  const error = await sendAndWait('closeafterfirst', '2', 'error');
  assert.match(await error.textContent(), /stream_not_accepting/);
  const echo = await sendAndWait('echostream', '"still open"', 'received');
  assert.match(await echo.textContent(), /still open/);
});

test('an unknown stream shows the error frame in red', async () => {
  const error = await sendAndWait('nope', '{}', 'error');
  assert.equal(await error.getAttribute('data-stream'), 'nope');
  assert.match(await error.textContent(), /unknown_stream/);
  const color = await error.evaluate((el) => getComputedStyle(el).color);
  // The page's --bad colour (#b42318); other entries use the text colour.
  assert.equal(color, 'rgb(180, 35, 24)');
});

test('invalid JSON is caught in the page; sent raw it gets invalid_json', async () => {
  const sentBefore = await page.locator('#log .entry.sent').count();
  await page.fill('#stream', 'echostream');
  await page.fill('#payload', '{broken');
  await page.click('#send');
  await page.waitForFunction(() => document.querySelector('#payload-error').textContent.trim() !== '');
  assert.equal(await page.locator('#log .entry.sent').count(), sentBefore, 'nothing was sent');

  const error = await sendAndWait('echostream', '{broken', 'error', '#send-raw');
  assert.match(await error.textContent(), /invalid_json/);
  assert.equal(await page.getAttribute('#status', 'data-state'), 'open');
});

test('chat: two tabs in one room hear each other', async () => {
  const other = await browser.newPage();
  await other.goto(url);
  await other.waitForSelector('#status[data-state="open"]', { timeout: 10000 });
  const join = async (p) => {
    const n = await p.locator('#log .entry.received').count();
    await p.fill('#stream', 'chat');
    await p.fill('#payload', '{"join": "lobby"}');
    await p.click('#send');
    await p.waitForFunction((n) => document.querySelectorAll('#log .entry.received').length > n, n);
  };
  await join(page);
  await join(other);
  const before = await other.locator('#log .entry.received').count();
  await sendAndWait('chat', '{"room": "lobby", "message": "hello from tab one"}', 'received');
  await other.waitForFunction((n) => document.querySelectorAll('#log .entry.received').length > n, before);
  const heard = other.locator('#log .entry.received').last();
  assert.equal(await heard.getAttribute('data-stream'), 'chat');
  assert.match(await heard.textContent(), /hello from tab one/);
  await other.close();
});

// Protocol version 2 through the page's client: subscriptions, requests,
// closed frames, ping (over the raw socket) and reconnection.

/** A fresh tab on the demo page, connected. */
async function openPage() {
  const p = await browser.newPage();
  await p.goto(url);
  await p.waitForSelector('#status[data-state="open"]', { timeout: 10000 });
  return p;
}

/** Waits until `selector` shows on `p` (the last match, if several); returns its locator. */
async function shown(p, selector, timeout = 5000) {
  const entry = p.locator(selector).last();
  await entry.waitFor({ timeout });
  return entry;
}

/** Types `name` (and `params`) into the Subscriptions form and clicks Subscribe; waits until the list shows it subscribed. */
async function subscribe(p, name, params = '') {
  await p.fill('#sub-stream', name);
  await p.fill('#sub-params', params);
  await p.click('#subscribe');
  await shown(p, `#subs li[data-stream="${name}"][data-state="subscribed"]`);
  const answer = await shown(p, `#log .entry[data-kind="subscribed"][data-stream="${name}"]`);
  // The log shows the call, then the answer once the client's subscribe resolved.
  const call = answer.locator('xpath=preceding-sibling::div[@data-kind="sent"][1]');
  assert.equal(await call.getAttribute('data-stream'), name);
  assert.match(await call.textContent(), new RegExp(`mux\\.subscribe\\(${JSON.stringify(name)}`));
}

/** Fills the Send form (with "Wait for reply" set to `wait`) and clicks Send. */
async function sendForm(p, stream, payload, { wait = false } = {}) {
  await p.fill('#stream', stream);
  await p.fill('#payload', payload);
  await p.setChecked('#wait-reply', wait);
  await p.click('#send');
}

/** The payloads of the `received` entries of `stream`, parsed, in log order. */
async function payloads(p, stream) {
  const texts = await p.locator(`#log .entry[data-kind="received"][data-stream="${stream}"] pre`).allTextContents();
  return texts.map((t) => JSON.parse(t));
}

test('ticker: subscribe with params, ticks in order, unsubscribe stops them', async () => {
  const p = await openPage();
  try {
    await subscribe(p, 'ticker:ACME', '{"interval_ms": 100}');
    const sent = p.locator('#log .entry[data-kind="sent"][data-stream="ticker:ACME"]').last();
    assert.match(await sent.textContent(), /mux\.subscribe\("ticker:ACME", \{"interval_ms": 100\}\)/);
    // Three ticks at 100 ms; at the default 1000 ms they would take 3 s.
    await p.waitForFunction(
      () => document.querySelectorAll('#log .entry[data-kind="received"][data-stream="ticker:ACME"]').length >= 3,
      null,
      { timeout: 2000 },
    );
    const ticks = await payloads(p, 'ticker:ACME');
    assert.deepEqual(ticks.slice(0, 3), [
      { symbol: 'ACME', seq: 1 }, { symbol: 'ACME', seq: 2 }, { symbol: 'ACME', seq: 3 },
    ]);

    await p.getByRole('button', { name: 'Unsubscribe from ticker:ACME', exact: true }).click();
    await shown(p, '#log .entry[data-kind="unsubscribed"][data-stream="ticker:ACME"]');
    await p.locator('#subs li[data-stream="ticker:ACME"]').waitFor({ state: 'detached', timeout: 5000 });
    // Every tick came before the unsubscribe; none after it.
    const atAnswer = await payloads(p, 'ticker:ACME');
    assert.deepEqual(atAnswer.map((t) => t.seq), atAnswer.map((_, i) => i + 1), 'consecutive seqs from 1');
    await p.waitForTimeout(500);
    assert.equal((await payloads(p, 'ticker:ACME')).length, atAnswer.length, 'no tick after unsubscribed');
    assert.equal(await p.locator('#subs li').count(), 0);
  } finally {
    await p.close();
  }
});

test('room:lobby: two tabs subscribed, one sends, both logs show it', async () => {
  const [a, b] = await Promise.all([openPage(), openPage()]);
  try {
    await subscribe(a, 'room:lobby');
    await subscribe(b, 'room:lobby');
    const text = `hello lobby ${Date.now()}`;
    await sendForm(a, 'room:lobby', JSON.stringify({ text }));
    for (const p of [a, b]) {
      const heard = await shown(p, `#log .entry[data-kind="received"][data-stream="room:lobby"]:has-text("${text}")`);
      assert.deepEqual(JSON.parse(await heard.locator('pre').textContent()), { text });
    }
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('closeafterfirst: echo, then a closed entry with 1000; subscribing again works', async () => {
  const p = await openPage();
  try {
    for (const word of ['first', 'again']) {
      const closedBefore = await p.locator('#log .entry[data-kind="closed"]').count();
      await subscribe(p, 'closeafterfirst');
      await sendForm(p, 'closeafterfirst', JSON.stringify(word));
      await p.waitForFunction(
        (n) => document.querySelectorAll('#log .entry[data-kind="closed"]').length > n,
        closedBefore,
        { timeout: 5000 },
      );
      const closed = p.locator('#log .entry[data-kind="closed"]').last();
      assert.equal(await closed.getAttribute('data-stream'), 'closeafterfirst');
      assert.equal(await closed.getAttribute('data-code'), '1000');
      assert.match(await closed.textContent(), /code 1000/);
      // The echo came first: the entry just before the closed one.
      const previous = closed.locator('xpath=preceding-sibling::div[1]');
      assert.equal(await previous.getAttribute('data-kind'), 'received');
      assert.equal(await previous.getAttribute('data-stream'), 'closeafterfirst');
      assert.equal(JSON.parse(await previous.locator('pre').textContent()), word);
      await p.locator('#subs li[data-stream="closeafterfirst"]').waitFor({ state: 'detached', timeout: 5000 });
    }
  } finally {
    await p.close();
  }
});

test('ping over the raw socket shows a pong; unknown_stream on subscribe', async () => {
  const p = await openPage();
  try {
    await p.click('#ping');
    const pong = await shown(p, '#log .entry[data-kind="pong"]');
    assert.equal(await pong.getAttribute('data-socket'), 'raw');
    assert.match(await pong.textContent(), /round trip \d+(\.\d+)? ms/);
    assert.equal(await p.getAttribute('#raw-status', 'data-state'), 'open');

    await p.fill('#sub-stream', 'nope');
    await p.fill('#sub-params', '');
    await p.click('#subscribe');
    const error = await shown(p, '#log .entry[data-kind="error"][data-stream="nope"]');
    assert.equal(await error.getAttribute('data-code'), 'unknown_stream');
    assert.match(await error.textContent(), /unknown_stream/);
    await p.locator('#subs li[data-stream="nope"]').waitFor({ state: 'detached', timeout: 5000 });
  } finally {
    await p.close();
  }
});

test('requests: echostream resolves with its reply; nope rejects with unknown_stream', async () => {
  const p = await openPage();
  try {
    await sendForm(p, 'echostream', '{"n": 1}', { wait: true });
    const sent = await shown(p, '#log .entry[data-kind="sent"][data-stream="echostream"]');
    assert.match(await sent.textContent(), /request/);
    const n = await sent.getAttribute('data-request');
    assert.match(n, /^\d+$/);
    const reply = await shown(p, `#log .entry[data-kind="reply"][data-request="${n}"]`);
    assert.equal(await reply.getAttribute('data-stream'), 'echostream');
    assert.deepEqual(JSON.parse(await reply.locator('pre').textContent()), { n: 1 });
    // The reply went to the request, not to the stream's messages.
    assert.equal(await p.locator('#log .entry[data-kind="received"]').count(), 0);

    await sendForm(p, 'nope', '{}', { wait: true });
    const sentNope = await shown(p, '#log .entry[data-kind="sent"][data-stream="nope"]');
    const m = await sentNope.getAttribute('data-request');
    assert.notEqual(m, n);
    const error = await shown(p, `#log .entry[data-kind="error"][data-request="${m}"]`);
    assert.equal(await error.getAttribute('data-code'), 'unknown_stream');
    assert.equal(await error.getAttribute('data-stream'), 'nope');
    assert.match(await error.textContent(), /unknown_stream/);
  } finally {
    await p.close();
  }
});

test('a second Subscribe shares the subscription; the last Unsubscribe ends it', async () => {
  const p = await openPage();
  try {
    await subscribe(p, 'room:shared');
    await p.click('#subscribe');
    await shown(p, '#subs li[data-stream="room:shared"][data-state="subscribed"][data-count="2"]');
    assert.equal(await p.locator('#subs li').count(), 1, 'one entry for the name');
    const text = `shared ${Date.now()}`;
    await sendForm(p, 'room:shared', JSON.stringify({ text }));
    await shown(p, `#log .entry[data-kind="received"]:has-text("${text}")`);
    await p.waitForTimeout(200);
    assert.equal(await p.locator(`#log .entry[data-kind="received"]:has-text("${text}")`).count(), 1, 'logged once');

    const button = p.getByRole('button', { name: 'Unsubscribe from room:shared', exact: true });
    await button.click();
    await shown(p, '#subs li[data-stream="room:shared"][data-state="subscribed"][data-count="1"]');
    assert.equal(await p.locator('#log .entry[data-kind="unsubscribed"]').count(), 0, 'still subscribed');
    await button.click();
    await shown(p, '#log .entry[data-kind="unsubscribed"][data-stream="room:shared"]');
    await p.locator('#subs li[data-stream="room:shared"]').waitFor({ state: 'detached', timeout: 5000 });
  } finally {
    await p.close();
  }
});

test('a server restart on the same port: the page reconnects and resubscribes by itself', async () => {
  const a = await openPage();
  let b;
  try {
    await subscribe(a, 'room:lobby');
    const addr = new URL(url).host;
    const exited = serverExit;
    server.kill('SIGKILL');
    assert.deepEqual(await within(exited, 5000, 'the server to die'), { code: null, signal: 'SIGKILL' });
    await a.waitForSelector('#status[data-state="reconnecting"]', { timeout: 5000 });
    await shown(a, '#subs li[data-stream="room:lobby"][data-state="resubscribing"]', 1000);

    ({ child: server } = await startServer(addr));
    // No click: the client reconnects, resubscribes, then reports open.
    await a.waitForSelector('#status[data-state="open"]', { timeout: 15000 });
    await shown(a, '#subs li[data-stream="room:lobby"][data-state="subscribed"]', 1000);
    await shown(a, '#log .note:has-text("resubscribed: room:lobby")', 1000);

    // A second tab sends to the room without subscribing: the message reaches
    // the first only if its client subscribed again on the new server.
    b = await openPage();
    const text = `after the restart ${Date.now()}`;
    await sendForm(b, 'room:lobby', JSON.stringify({ text }));
    const heard = await shown(a, `#log .entry[data-kind="received"][data-stream="room:lobby"]:has-text("${text}")`);
    assert.deepEqual(JSON.parse(await heard.locator('pre').textContent()), { text });

    // The shared page is back too, on the same url.
    await page.waitForSelector('#status[data-state="open"]', { timeout: 15000 });
  } finally {
    await Promise.all([a.close(), b?.close()]);
  }
});

test('stopping the server with Ctrl-C shows the 1001 close, then reconnecting', async () => {
  await page.waitForSelector('#status[data-state="open"]', { timeout: 15000 });
  server.kill('SIGINT');
  await page.waitForSelector('#status[data-state="reconnecting"]', { timeout: 10000 });
  assert.match(await page.textContent('#status'), /code 1001/);
  await shown(page, '#log .note[data-code="1001"]', 1000);
  const exit = await within(serverExit, 15000, 'the server to exit');
  assert.deepEqual(exit, { code: 0, signal: null });
});
