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
