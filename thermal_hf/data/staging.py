"""Hidden folders that a dataset is written into before it is renamed into place (`convert`, `synth`).

A process writing one holds a lock on its owner file; a folder whose lock is gone belongs to a process that was
killed outright (SIGKILL, the out-of-memory killer) and is removed by the next write into the same output, so
abandoned folders (hundreds of MB each) do not pile up. SIGTERM is turned into SystemExit while writing, so the
folder is removed as on Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

OWNER_FILE = ".owner"  # "HOST PID" of the process writing the hidden folder


def raise_on_sigterm():
    """Make SIGTERM (`kill`, a scheduler's cancel) raise SystemExit while writing; returns the function that
    restores the previous handler. Only from the main thread and over the default handler (an application's own
    handler is left alone)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return lambda: None

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)


def hold_owner_lock(tmp: Path):
    """Write ``HOST PID`` into `tmp`'s owner file and hold an exclusive lock on it until the returned file is
    closed; the kernel drops the lock when the process dies, however it dies. None where there is no flock."""
    try:
        import fcntl
    except ImportError:  # Windows: no sweep of abandoned folders either
        return None
    handle = open(tmp / OWNER_FILE, "w")  # noqa: SIM115  (held open for the whole write)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # a file system without locks (some network mounts): written without; never swept
        handle.close()
        (tmp / OWNER_FILE).unlink(missing_ok=True)
        return None
    handle.write(f"{socket.gethostname()} {os.getpid()}\n")
    handle.flush()
    return handle


def remove_abandoned(output_dir: Path, infix: str) -> None:
    """Delete the hidden folders ``.<output name><infix>*`` beside `output_dir` whose process is gone: those whose
    owner file, written on this machine, is no longer locked (a running write holds the lock, in whatever process
    namespace it runs)."""
    try:
        import fcntl
    except ImportError:
        return
    host = socket.gethostname()
    for tmp in output_dir.parent.glob(f".{output_dir.name}{infix}*"):
        try:
            with open(tmp / OWNER_FILE, "r+") as handle:
                if handle.read().split()[:1] != [host]:
                    continue  # another machine's (a shared file system), or no record: leave it
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while its write runs
        except OSError:  # locked (running), or no owner file (an older version's folder): leave it
            continue
        shutil.rmtree(tmp, ignore_errors=True)
