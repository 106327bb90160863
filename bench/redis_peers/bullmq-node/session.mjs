// BullMQ on Node, driven by bench/redis_run.py over stdin/stdout exactly like the Python
// systems (see ../session.py for the ops): one JSON request per line, one reply per line.
import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { now } from './probe.mjs';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const VARIANTS = { c10: 10, c50: 50, c100: 100 };

export function connection() {
  const url = new URL(process.env.BENCH_REDIS_URL || 'redis://127.0.0.1:6379/0');
  return { host: url.hostname, port: Number(url.port || 6379), db: Number(url.pathname.slice(1) || 0) };
}

function pkgVersion(name) {
  try {
    return JSON.parse(readFileSync(`${HERE}node_modules/${name}/package.json`, 'utf8')).version;
  } catch {
    return null;
  }
}

let queue = null;
function q() {
  if (queue === null) queue = new Queue('default', { connection: connection() });
  return queue;
}

const ops = {
  info: async () => ({
    flavors: ['async'],
    versions: { bullmq: pkgVersion('bullmq'), ioredis: pkgVersion('ioredis'), node: process.versions.node },
    api: 'async (await queue.add(name, data))',
    bulk: 'await queue.addBulk([...]): one pipeline of addJob scripts',
    variants: Object.fromEntries(Object.entries(VARIANTS).map(
      ([name, c]) => [name, `node worker.mjs ${c} (Worker concurrency=${c})`])),
    delivery: 'at-least-once: job lock renewed; stalled jobs moved back to wait; completed jobs kept',
  }),
  worker: async ({ variant }) => ({
    argv: [process.execPath, `${HERE}worker.mjs`, String(VARIANTS[variant])], env: {},
  }),
  warm: async ({ n = 20 }) => {
    for (let i = 0; i < n; i++) await q().add('noop', {});
    return null;
  },
  enqueue: async ({ n }) => {
    const queue = q();
    const start = performance.now();
    for (let i = 0; i < n; i++) await queue.add('noop', {});
    return (performance.now() - start) / 1000;
  },
  bulk: async ({ n }) => {
    const start = performance.now();
    await q().addBulk(Array.from({ length: n }, () => ({ name: 'noop', data: {} })));
    return (performance.now() - start) / 1000;
  },
  preload: async ({ n }) => {
    for (let start = 0; start < n; start += 5000) {
      const size = Math.min(5000, n - start);
      await q().addBulk(Array.from({ length: size }, () => ({ name: 'noop', data: {} })));
    }
    return null;
  },
  remaining: async () => {
    const counts = await q().getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'paused');
    return Object.values(counts).reduce((a, b) => a + b, 0);
  },
  stamp: async ({ i }) => {
    const before = now();
    await q().add('stamp', { i });
    return before;
  },
  close: async () => {
    if (queue !== null) await queue.close();
    return null;
  },
};

async function main() {
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const { op, ...args } = JSON.parse(line);
    let reply;
    try {
      reply = { ok: await ops[op](args) };
    } catch (err) {
      console.error(err);
      reply = { error: `${err.name}: ${err.message}` };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
    if (op === 'close') break;
  }
  process.exit(0);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
