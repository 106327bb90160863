"""One conveyor worker process for the benchmark (stand-in until `conveyor worker` exists).

    CONVEYOR_URL=sqlite:////tmp/x/bench.db python bench/conveyor_worker.py -c 100

Default worker settings except concurrency; SIGTERM / SIGINT stop it gracefully. With
--profile FILE the worker runs under cProfile and writes the stats there on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging

from conveyor_app import app

from conveyor.worker import Worker


async def work(concurrency: int, queues: list[str] | None) -> None:
    worker = Worker(app, queues, concurrency=concurrency)
    worker.install_signal_handlers()
    await worker.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--concurrency", type=int, default=100)
    parser.add_argument("-q", "--queues", default=None, help="comma-separated queue names")
    parser.add_argument("--profile", default=None, help="write cProfile stats to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    queues = args.queues.split(",") if args.queues else None
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            asyncio.run(work(args.concurrency, queues))
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        asyncio.run(work(args.concurrency, queues))


if __name__ == "__main__":
    main()
