// Two demo servers sharing one Redis Cluster deliver each other's room
// messages: a client on each subscribes to room:NAME, and each side's
// message must reach the other. Used by scripts/cluster-check.sh; runs
// alone too:
//
//   node --experimental-websocket scripts/cluster-rooms.mjs HOST:PORT HOST:PORT [ROOM] [THEN_FILE]
//
// With THEN_FILE, the same two clients stay subscribed and check again once
// that file exists (waiting at most 120 s): across a failover, say. A
// message sent while the cluster fails over is lost (delivery is at most
// once), so in that second check each direction is tried up to 30 times,
// 1 s apart. Exits 1 if a direction never gets through.

import { existsSync } from 'node:fs';

const [a, b, room = 'x', thenFile] = process.argv.slice(2);
if (!a || !b) {
  console.error('usage: node --experimental-websocket scripts/cluster-rooms.mjs HOST:PORT HOST:PORT [ROOM] [THEN_FILE]');
  process.exit(2);
}
const stream = `room:${room}`;

async function member(addr) {
  const ws = new WebSocket(`ws://${addr}/ws/`);
  const heard = [];
  ws.addEventListener('message', (event) => heard.push(JSON.parse(event.data)));
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('error', () => reject(new Error(`cannot connect to ${addr}`)), { once: true });
  });
  ws.send(JSON.stringify({ subscribe: stream, ref: 'join' }));
  const answer = await waitFor(heard, (f) => f.ref === 'join', 5000);
  if (!answer || answer.subscribed !== stream) throw new Error(`${addr}: subscribe answered ${JSON.stringify(answer)}`);
  return { addr, heard, send: (payload) => ws.send(JSON.stringify({ stream, payload })), close: () => ws.close(1000) };
}

async function waitFor(frames, match, wait) {
  const deadline = Date.now() + wait;
  while (Date.now() < deadline) {
    const at = frames.findIndex(match);
    if (at >= 0) return frames.splice(at, 1)[0];
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return null;
}

const members = [await member(a), await member(b)];
let failed = 0;

async function bothWays(tries) {
  for (const [from, to] of [[0, 1], [1, 0]]) {
    let got = null;
    for (let attempt = 1; attempt <= tries && !got; attempt += 1) {
      const token = `${members[from].addr}->${members[to].addr} #${attempt} ${Date.now()}`;
      members[from].send({ token });
      got = await waitFor(members[to].heard, (f) => f.stream === stream && f.payload?.token === token, 1000);
      if (got) console.log(`ok   ${stream}: ${members[from].addr} -> ${members[to].addr} (attempt ${attempt})`);
    }
    if (!got) {
      console.log(`FAIL ${stream}: ${members[from].addr} -> ${members[to].addr} never arrived in ${tries} tries`);
      failed += 1;
    }
  }
}

await bothWays(1);
if (thenFile) {
  console.log('waiting');
  const deadline = Date.now() + 120_000;
  while (!existsSync(thenFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  console.log('same clients, still subscribed:');
  await bothWays(30);
}
members.forEach((m) => m.close());
process.exit(failed ? 1 : 0);
