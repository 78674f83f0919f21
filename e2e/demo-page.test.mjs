// The demo page in a real headless Chromium against the real server binary:
// what a person sees when they try each stream, bad input, and a shutdown.
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

/** Starts the server on a free loopback port; resolves with its URL. */
function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(SERVER, ['--addr', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    // Listen from the start, so an exit is never missed.
    serverExit = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
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

// Protocol version 2 in the page: subscriptions, refs, closed frames and ping.

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
  // The answer in the log carries the ref the page sent with the subscribe.
  const answer = await shown(p, `#log .entry[data-kind="subscribed"][data-stream="${name}"]`);
  const ref = await answer.getAttribute('data-ref');
  assert.match(ref, /^p\d+$/);
  const sent = p.locator(`#log .entry[data-kind="sent"][data-ref="${ref}"]`);
  assert.equal(await sent.count(), 1, 'the subscribe was sent with that ref');
  assert.match(await sent.textContent(), new RegExp(`"subscribe":\\s*"${name}"`));
}

/** Fills the Send form and clicks Send. */
async function sendForm(p, stream, payload, ref = '') {
  await p.fill('#stream', stream);
  await p.fill('#payload', payload);
  await p.fill('#ref', ref);
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
    assert.match(await sent.textContent(), /"params":\s*\{"interval_ms": 100\}/);
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
    const done = await shown(p, '#log .entry[data-kind="unsubscribed"][data-stream="ticker:ACME"]');
    assert.match(await done.getAttribute('data-ref'), /^p\d+$/);
    await p.locator('#subs li[data-stream="ticker:ACME"]').waitFor({ state: 'detached', timeout: 5000 });
    // Every tick came before the answer; none after it.
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

test('ping shows a pong; a ref comes back on the reply; unknown_stream on subscribe', async () => {
  const p = await openPage();
  try {
    await p.click('#ping');
    const pong = await shown(p, '#log .entry[data-kind="pong"]');
    assert.match(await pong.textContent(), /round trip \d+(\.\d+)? ms/);

    await sendForm(p, 'echostream', '{"n": 1}', 'x1');
    const reply = await shown(p, '#log .entry[data-kind="received"][data-ref="x1"]');
    assert.equal(await reply.getAttribute('data-stream'), 'echostream');
    assert.match(await reply.textContent(), /ref: "x1"/);
    assert.deepEqual(JSON.parse(await reply.locator('pre').textContent()), { n: 1 });

    await p.fill('#sub-stream', 'nope');
    await p.fill('#sub-params', '');
    await p.click('#subscribe');
    const error = await shown(p, '#log .entry[data-kind="error"][data-stream="nope"]');
    assert.equal(await error.getAttribute('data-code'), 'unknown_stream');
    assert.match(await error.textContent(), /unknown_stream/);
    const ref = await error.getAttribute('data-ref');
    assert.match(ref, /^p\d+$/);
    assert.match(await error.textContent(), new RegExp(`ref: "${ref}"`));
    await p.locator('#subs li[data-stream="nope"]').waitFor({ state: 'detached', timeout: 5000 });
  } finally {
    await p.close();
  }
});

test('stopping the server with Ctrl-C shows the 1001 close', async () => {
  server.kill('SIGINT');
  await page.waitForSelector('#status[data-state="closed"]', { timeout: 10000 });
  assert.match(await page.textContent('#status'), /1001/);
  const exit = await Promise.race([
    serverExit,
    new Promise((_, fail) => setTimeout(() => fail(new Error('server did not exit')), 15000)),
  ]);
  assert.deepEqual(exit, { code: 0, signal: null });
});
