"""The producer side of one system in the Redis benchmark, driven over stdin/stdout.

    <venv>/bin/python bench/redis_peers/session.py <system>

imports ``<system>_peer.py`` (its `Peer` class) and answers one JSON request per line,
``{"op": ..., ...}`` -> ``{"ok": value}`` or ``{"error": "..."}``, until stdin closes. The
driver (bench/redis_run.py) starts one session per measurement and reads Redis's own
statistics between requests, so setting up and warming a client is never counted.

Ops: ``info``; ``worker`` (argv and env of one worker process for a named variant);
``warm``; ``enqueue`` (n jobs one at a time with the sync or async API, timed here);
``bulk`` (n jobs through the system's bulk API, timed here, or ``{"na": why}``);
``preload`` (n jobs the fastest way, untimed); ``remaining`` (jobs not yet settled, in
the system's own terms); ``stamp`` (enqueue pickup job i; returns the time just before).

Standard library only, besides the system itself: it runs inside each peer's virtualenv.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


class Session:
    def __init__(self, peer: Any) -> None:
        self.peer = peer
        self.loop = asyncio.new_event_loop()

    def run(self, value: Any) -> Any:
        return self.loop.run_until_complete(value) if inspect.isawaitable(value) else value

    # -- ops ------------------------------------------------------------------------------
    def op_info(self) -> dict[str, Any]:
        info: dict[str, Any] = self.run(self.peer.info())
        info["flavors"] = [flavor for flavor, attr in (("sync", "enqueue"), ("async", "aenqueue"))
                           if hasattr(self.peer, attr)]
        return info

    def op_worker(self, variant: str) -> dict[str, Any]:
        argv, env = self.peer.worker(variant)
        return {"argv": argv, "env": env}

    def op_warm(self, n: int = 20, flavor: str = "") -> None:
        """Connect and warm the client (and the server's script cache) before timing."""
        if not flavor:
            flavor = "sync" if hasattr(self.peer, "enqueue") else "async"
        self.op_enqueue(n, flavor)

    def op_enqueue(self, n: int, flavor: str) -> float:
        if flavor == "sync":
            enqueue = self.peer.enqueue
            start = time.perf_counter()
            for _ in range(n):
                enqueue()
            return time.perf_counter() - start
        aenqueue = self.peer.aenqueue

        async def go() -> float:
            start = time.perf_counter()
            for _ in range(n):
                await aenqueue()
            return time.perf_counter() - start

        return self.loop.run_until_complete(go())

    def op_bulk(self, n: int) -> Any:
        bulk = getattr(self.peer, "bulk", None)
        if bulk is None:
            return {"na": self.peer.NO_BULK}
        if inspect.iscoroutinefunction(bulk):
            async def go() -> float:
                start = time.perf_counter()
                await bulk(n)
                return time.perf_counter() - start

            return self.loop.run_until_complete(go())
        start = time.perf_counter()
        bulk(n)
        return time.perf_counter() - start

    def op_preload(self, n: int) -> None:
        self.run(self.peer.preload(n))

    def op_remaining(self) -> int:
        return int(self.run(self.peer.remaining()))

    def op_stamp(self, i: int) -> float:
        if hasattr(self.peer, "stamp"):
            before = time.time()
            self.peer.stamp(i)
            return before

        async def go() -> float:
            before = time.time()
            await self.peer.astamp(i)
            return before

        return self.loop.run_until_complete(go())

    def op_close(self) -> None:
        close = getattr(self.peer, "close", None)
        if close is not None:
            self.run(close())


def main() -> None:
    system = sys.argv[1]
    module = importlib.import_module(f"{system.replace('-', '_')}_peer")
    session = Session(module.Peer())
    out = sys.stdout
    sys.stdout = sys.stderr  # libraries that print must not break the protocol
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request.pop("op")
        try:
            reply: dict[str, Any] = {"ok": getattr(session, f"op_{op}")(**request)}
        except Exception as exc:
            traceback.print_exc()
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
        if op == "close":
            break


if __name__ == "__main__":
    main()
