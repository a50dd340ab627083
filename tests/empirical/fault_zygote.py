"""A fork server for the fault tests: imports the engine once, then runs each study in a forked child.

Reads one JSON request per line on stdin: {"argv": [...], "fault": {"at": N, "signal": "KILL"|"INT"} | null,
"count": bool}. The child counts the study's file-system commit events (``os.replace``, ``os.rename``,
``results._write_new``, ``os.fsync``) and, at event N, sends itself the signal just *before* the event
happens: every kill point between two writes of a merge, between two files of a group, and between the
commits of two groups is reachable. Answers one JSON line: {"rc", "signal", "events", "stderr"}.
The server itself never runs a torch op, so forking it is safe.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import tempfile
import time


def _child(req: dict) -> None:
    import torch

    from empirical import results, run

    torch.set_num_threads(1)
    # Ctrl-C as in a terminal, even when the test runner was started in the background (a non-interactive
    # shell starts background jobs with SIGINT ignored, and Python then installs no KeyboardInterrupt handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    fault = req.get("fault") or {}
    at = fault.get("at") if fault.get("after_s") is None else None
    sig = {"KILL": signal.SIGKILL, "INT": signal.SIGINT}[fault.get("signal", "KILL")]
    count = [0]
    log_path = req["events_file"]
    real_replace = os.replace          # the count is published atomically, outside the counted events

    def hook(name, fn):
        def wrapped(*a, **kw):
            count[0] += 1
            if at is not None and count[0] == at:
                os.kill(os.getpid(), sig)
            return fn(*a, **kw)
        return wrapped

    os.replace = hook("replace", os.replace)
    os.rename = hook("rename", os.rename)
    os.fsync = hook("fsync", os.fsync)
    results._write_new = hook("write_new", results._write_new)
    err = open(req["stderr_file"], "w")
    os.dup2(err.fileno(), 2)
    os.dup2(err.fileno(), 1)
    try:
        code = run.main(req["argv"])
    except BaseException:  # noqa: BLE001 - report, never hang the server
        import traceback

        traceback.print_exc()
        code = 99
    with open(log_path + ".tmp", "w") as fh:
        fh.write(str(count[0]))
    real_replace(log_path + ".tmp", log_path)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(code)


def main() -> None:
    import torch

    torch.set_num_threads(1)  # one thread before any op: no OpenMP pool exists when the server forks
    from empirical import run

    warm = tempfile.mkdtemp(prefix="zygote-warm-")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = run.main(["--out-dir", warm, *sys.argv[1:]])  # imports, registry, data: once for every child
    print(json.dumps({"ready": os.getpid(), "warm": code}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        tmp = tempfile.mkdtemp(prefix="zygote-")
        req["events_file"] = os.path.join(tmp, "events")
        req["stderr_file"] = os.path.join(tmp, "stderr")
        pid = os.fork()
        if pid == 0:
            _child(req)
        after = (req.get("fault") or {}).get("after_s")
        status = None
        if after is not None:
            deadline = time.monotonic() + after
            while time.monotonic() < deadline:
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = st
                    break
                time.sleep(0.002)
            if status is None:
                os.kill(pid, {"KILL": signal.SIGKILL, "INT": signal.SIGINT}[req["fault"].get("signal", "KILL")])
        if status is None:
            _, status = os.waitpid(pid, 0)
        events = None
        if os.path.exists(req["events_file"]):
            events = int(open(req["events_file"]).read())
        stderr = open(req["stderr_file"]).read() if os.path.exists(req["stderr_file"]) else ""
        reply = {"rc": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                 "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                 "events": events, "stderr": stderr}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
