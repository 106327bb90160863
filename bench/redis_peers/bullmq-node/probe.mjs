// The same probe as ../probe.py, for the Node worker: ran() counts no-op runs and writes
// the first start and the BENCH_EXPECT-th end to BENCH_DONE; stamp(i) appends
// "i <seconds since the epoch>" to BENCH_STAMPS the moment a pickup job starts.
import { appendFileSync, renameSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const expect = Number(process.env.BENCH_EXPECT || 0);
const done = process.env.BENCH_DONE || '';
const stamps = process.env.BENCH_STAMPS || '';
let first = null;
let count = 0;

export function now() {
  return (performance.timeOrigin + performance.now()) / 1000;
}

export function ran() {
  const t = now();
  if (first === null) first = t;
  count += 1;
  if (count !== expect || !done) return;
  writeFileSync(done + '.tmp', JSON.stringify({ first, last: now(), count, pid: process.pid }));
  renameSync(done + '.tmp', done);
}

export function stamp(i) {
  const t = now();
  if (stamps) appendFileSync(stamps, `${i} ${t}\n`);
}
