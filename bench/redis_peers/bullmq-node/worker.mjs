// One BullMQ worker process for the benchmark: node worker.mjs CONCURRENCY
import { Worker } from 'bullmq';
import { ran, stamp } from './probe.mjs';
import { connection } from './session.mjs';

const concurrency = Number(process.argv[2] || 1);
const worker = new Worker('default', async (job) => {
  if (job.name === 'noop') ran();
  else stamp(job.data.i);
}, { connection: connection(), concurrency });
worker.on('error', (err) => console.error(err));

async function stop() {
  await worker.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
