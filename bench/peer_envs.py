"""The peers' own environments for the Redis benchmark, made on first use and then cached.

Each Python peer gets a virtualenv ``bench/.venvs/redis-<peer>`` (git-ignored) with the
floor versions below plus hiredis (redis-py uses it on its own when installed; conveyor
uses it too). BullMQ on Node gets ``npm install`` in ``bench/redis_peers/bullmq-node``
(its ``node_modules`` is git-ignored; ``package.json`` is committed). A stamp file records
the requirement list that was installed, so a changed list reinstalls and an unchanged one
costs nothing. Installed versions are read back at run time and printed with the results.

    .venv/bin/python bench/peer_envs.py [peer ...]     # prepare ahead of a run
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from common import BENCH_DIR, note

VENVS = BENCH_DIR / ".venvs"
PEERS_DIR = BENCH_DIR / "redis_peers"
NODE_DIR = PEERS_DIR / "bullmq-node"
INSTALL_TIMEOUT = 900


@dataclass(frozen=True)
class PeerEnv:
    name: str
    requirements: tuple[str, ...]  # pip requirement strings; empty for node / conveyor
    distributions: tuple[str, ...]  # whose installed versions we report
    kind: str = "python"  # "python", "node" or "project" (conveyor: the project's venv)

    @property
    def folder(self) -> Path:
        return NODE_DIR if self.kind == "node" else VENVS / f"redis-{self.name}"

    @property
    def python(self) -> Path:
        if self.kind == "project":
            return Path(sys.executable)
        return self.folder / "bin" / "python"

    @property
    def stamp(self) -> Path:
        # inside the git-ignored folder npm or venv fills, so it is never committed
        return self.folder / ("node_modules" if self.kind == "node" else "") / ".bench-stamp"

    def wanted(self) -> str:
        if self.kind == "node":
            return (NODE_DIR / "package.json").read_text()
        return json.dumps(self.requirements)


PEER_ENVS: dict[str, PeerEnv] = {env.name: env for env in (
    PeerEnv("conveyor", (), ("conveyor", "redis", "hiredis"), kind="project"),
    PeerEnv("celery", ("celery[redis]>=5.4", "hiredis"), ("celery", "kombu", "redis")),
    PeerEnv("rq", ("rq>=2.0", "hiredis"), ("rq", "redis")),
    PeerEnv("dramatiq", ("dramatiq[redis]>=1.17", "hiredis"), ("dramatiq", "redis")),
    PeerEnv("arq", ("arq>=0.26", "hiredis"), ("arq", "redis")),
    PeerEnv("saq", ("saq[redis,hiredis]>=0.22", "typing_extensions"), ("saq", "redis")),
    PeerEnv("taskiq", ("taskiq>=0.11", "taskiq-redis>=1.0", "hiredis"),
            ("taskiq", "taskiq-redis", "redis")),
    PeerEnv("huey", ("huey>=2.5", "redis>=5", "hiredis"), ("huey", "redis")),
    PeerEnv("bullmq", ("bullmq>=2.9", "hiredis"), ("bullmq", "redis")),
    PeerEnv("bullmq-node", (), ("bullmq", "ioredis"), kind="node"),
)}


def _run(argv: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-1500:]
        raise RuntimeError(f"{' '.join(argv[:4])} ... failed ({proc.returncode}): {tail}")


def ensure(env: PeerEnv) -> None:
    """Create or refresh the peer's environment unless its stamp matches. Raises on failure
    (the caller reports it in the table and goes on with the other peers)."""
    if env.kind == "project":
        return
    if env.stamp.exists() and env.stamp.read_text() == env.wanted() and (
            env.kind == "node" or env.python.exists()):
        return
    if env.kind == "node":
        if shutil.which("npm") is None:
            raise RuntimeError("npm is not installed")
        note(f"installing bullmq from npm into {env.folder} (first run only)")
        _run(["npm", "install", "--no-package-lock", "--no-audit", "--no-fund", "--silent"],
             cwd=env.folder)
    else:
        note(f"creating {env.folder} with {', '.join(env.requirements)} (first run only)")
        if env.folder.exists():
            shutil.rmtree(env.folder)
        python3 = getattr(sys, "_base_executable", None) or shutil.which("python3")
        _run([str(python3), "-m", "venv", str(env.folder)])
        _run([str(env.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              *env.requirements])
    env.stamp.write_text(env.wanted())


def main() -> None:
    names = sys.argv[1:] or list(PEER_ENVS)
    for name in names:
        try:
            ensure(PEER_ENVS[name])
            note(f"{name}: ready")
        except Exception as exc:
            note(f"{name}: FAILED: {exc}")


if __name__ == "__main__":
    main()
