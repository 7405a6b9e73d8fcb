"""`medcap train EXP --workers N`: a cluster of N workers on this machine, to try training across machines.

Each worker is a `medcap train` process with the same arguments (less
`--workers`) and its own `TF_CONFIG`: the cluster is N workers on
127.0.0.1 at free ports, and worker 0 is the chief. The launcher streams
the chief's output, keeps the others' in a temporary log each, and when any
worker fails it stops the rest and shows the failed one's last lines (exit
status: the failed worker's). On a real cluster the scheduler does this
launcher's job (README, "Training on several machines").
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

#: How often the launcher looks at its workers (seconds).
POLL_SECONDS = 0.2
#: Lines of a failed worker's log shown.
TAIL_LINES = 40


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 now (the OS's choice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def local_tf_configs(count: int) -> list[str]:
    """One TF_CONFIG per worker of a `count`-worker cluster on 127.0.0.1."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(count)]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}) for index in range(count)]


def run_local_workers(arguments: Sequence[str], count: int, *, python: str = sys.executable) -> int:
    """Runs `medcap <arguments>` as `count` workers (see the module docstring)."""
    if count < 2:
        raise ValueError(f"--workers {count}: a cluster needs at least 2 workers")
    logs = Path(tempfile.mkdtemp(prefix="medcap-workers-"))
    procs: list[subprocess.Popen] = []
    handles = []
    try:
        for index, tf_config in enumerate(local_tf_configs(count)):
            env = {**os.environ, "TF_CONFIG": tf_config}
            if index == 0:
                out = None  # the chief's output is the launcher's
            else:
                out = open(logs / f"worker-{index}.log", "w")  # noqa: SIM115  (closed below)
                handles.append(out)
            procs.append(
                subprocess.Popen([python, "-m", "medcap.cli", *arguments], env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
            )
        return _wait(procs, logs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for handle in handles:
            handle.close()
        for path in logs.glob("*.log"):
            path.unlink()
        logs.rmdir()


def _wait(procs: list[subprocess.Popen], logs: Path) -> int:
    while True:
        codes = [proc.poll() for proc in procs]
        failed = next((i for i, code in enumerate(codes) if code not in (None, 0)), None)
        if failed is not None:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
            if failed:
                lines = (logs / f"worker-{failed}.log").read_text(errors="replace").splitlines()[-TAIL_LINES:]
                print(f"medcap: worker {failed} failed (exit status {codes[failed]}); its last lines:", file=sys.stderr)
                print("\n".join(lines), file=sys.stderr)
            else:
                print(f"medcap: the chief (worker 0) failed (exit status {codes[0]})", file=sys.stderr)
            code = int(codes[failed])
            return code if code > 0 else 128 - code  # killed by signal S: 128 + S, as a shell says
        if all(code == 0 for code in codes):
            return 0
        time.sleep(POLL_SECONDS)
