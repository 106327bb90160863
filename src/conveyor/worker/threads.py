"""The thread executor for ``def`` tasks, on daemon threads.

A thread cannot be stopped from outside. When a worker shuts down past its grace period
it hands such a job back and must then be able to exit; `ThreadPoolExecutor` would keep
the process alive at exit until the thread returned (it joins its threads), so a stuck
task would pin a stopped worker. Daemon threads do not.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = object()


class DaemonThreadPool(concurrent.futures.Executor):
    def __init__(self, size: int, name: str = "conveyor-task") -> None:
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True)
                         for i in range(size)]
        self._started = False
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any,
               **kwargs: Any) -> concurrent.futures.Future[Any]:
        with self._lock:
            if not self._started:
                for thread in self._threads:
                    thread.start()
                self._started = True
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._work.put((future, fn, args, kwargs))
        return future

    def _serve(self) -> None:
        while True:
            item = self._work.get()
            if item is _STOP:
                return
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    item[0].cancel()
        for _ in self._threads:
            self._work.put(_STOP)
        if wait and self._started:
            for thread in self._threads:
                thread.join()
