// Checks a running server's drain as an operator would: opens N WebSockets,
// sends the server SIGTERM, and reports when and how each one was closed,
// what /readyz and a new WebSocket get during the drain, and when the
// process exits.
//
//   node --experimental-websocket scripts/drain-check.mjs PID HOST:PORT [N] [DRAIN_SECS]
//
// PID must be the server's (it gets the signal); N defaults to 200 and
// DRAIN_SECS (what the server was started with) to 10. Loopback only: it
// refuses other hosts. Exits 1 if a check fails.

import net from "node:net";

const [pid, addr, n = "200", drainArg = "10"] = process.argv.slice(2);
if (!pid || !addr) {
  console.error("usage: drain-check.mjs PID HOST:PORT [N] [DRAIN_SECS]");
  process.exit(2);
}
if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/.test(addr)) {
  console.error(`drain-check: ${addr} is not a loopback address`);
  process.exit(2);
}
const count = Number(n);
const drain = Number(drainArg) * 1000;
const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
};

// Every wait is bounded: a server that never answers is a failure, not a hang.
function within(ms, promise, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms).unref()),
  ]);
}

function open() {
  return within(5000, new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${addr}/ws/`);
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error("connect failed"));
  }), "opening a WebSocket");
}

async function status(path, headers = {}) {
  try {
    const response = await fetch(`http://${addr}${path}`, { headers, signal: AbortSignal.timeout(5000) });
    return response.status;
  } catch {
    return "no answer";
  }
}

// fetch() refuses to send Upgrade headers: the handshake by hand.
function upgradeStatus() {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(":")), Number(addr.slice(addr.lastIndexOf(":") + 1))];
  return within(5000, new Promise((resolve) => {
    const socket = net.connect(port, host.replace(/^\[|\]$/g, ""), () => {
      socket.write(
        `GET /ws/ HTTP/1.1\r\nHost: ${addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      );
    });
    let head = "";
    socket.on("data", (chunk) => {
      head += chunk;
      const line = head.split("\r\n")[0];
      if (head.includes("\r\n")) {
        socket.destroy();
        resolve(Number(line.split(" ")[1]));
      }
    });
    socket.on("error", () => resolve("no answer"));
    socket.on("close", () => resolve("no answer"));
  }), "the upgrade during the drain").catch(() => "no answer");
}

function alive() {
  try {
    process.kill(Number(pid), 0);
    return true;
  } catch {
    return false;
  }
}

const sockets = [];
for (let i = 0; i < count; i++) sockets.push(await open());
check(sockets.length === count, `${count} WebSockets open`);
check((await status("/readyz")) === 200, "/readyz 200 before the signal");

const closes = sockets.map(
  (ws) => new Promise((resolve) => (ws.onclose = (e) => resolve({ code: e.code, at: performance.now() }))),
);
const signalled = performance.now();
process.kill(Number(pid), "SIGTERM");
await new Promise((r) => setTimeout(r, 200));
const ready = await status("/readyz");
check(ready === 503, `/readyz during the drain: ${ready}`);
const upgrade = await upgradeStatus();
check(upgrade === 503, `a new WebSocket during the drain: HTTP ${upgrade}`);

const done = await within(drain + 5000, Promise.all(closes), "the closes").catch((error) => {
  check(false, error.message);
  process.exit(1);
});
let exitedAt = null;
while (exitedAt === null && performance.now() - signalled < drain + 5000) {
  if (!alive()) exitedAt = performance.now();
  else await new Promise((r) => setTimeout(r, 20));
}
const codes = new Map();
for (const { code } of done) codes.set(code, (codes.get(code) ?? 0) + 1);
check(codes.get(1001) === count, `close codes: ${JSON.stringify([...codes])}`);
const times = done.map(({ at }) => at - signalled).sort((a, b) => a - b);
const spread = times[times.length - 1] - times[0];
check(spread > drain / 10, `closes spread over ${(spread / 1000).toFixed(2)} s (first ${(times[0] / 1000).toFixed(2)} s, last ${(times[times.length - 1] / 1000).toFixed(2)} s after the signal)`);
const tenths = Array(10).fill(0);
for (const t of times) tenths[Math.min(9, Math.floor((t / drain) * 10))] += 1;
console.log(`     closes per tenth of the drain: ${tenths.join(" ")}`);
check(exitedAt !== null && exitedAt - signalled <= drain + 2000,
  `process gone ${exitedAt === null ? "never" : `${((exitedAt - signalled) / 1000).toFixed(2)} s`} after the signal (limit ${(drain + 2000) / 1000} s)`);
process.exit(failures.length ? 1 : 0);
