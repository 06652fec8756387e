"""Run every benchmark in bench/ in turn (what `make bench` does) and print their markdown tables.

Each bench script is standalone (`python bench/bench_x.py --help`); this runner passes the real data
folder when it exists so the figures in BENCHMARKS.md can be reproduced with one command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# The tests' variable too: a clone that is not beside ../shared points at the data with it.
REAL_DATA = Path(os.environ.get("THERMAL_REAL_DATA", BENCH_DIR.parent.parent / "shared" / "datasets" / "thermal_action_v1"))


def main(argv: list[str] | None = None) -> int:
    import argparse

    argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=f"Runs, in turn: {', '.join(p.name for p in sorted(BENCH_DIR.glob('bench_*.py')))}; each with "
        f"--real-data {REAL_DATA} when that folder exists. Takes no options of its own: run a script alone for its.",
    ).parse_args(argv)
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    failed = []
    for script in scripts:
        cmd = [sys.executable, str(script)]
        if REAL_DATA.is_dir() and "--real-data" in subprocess.run(
            [sys.executable, str(script), "--help"], capture_output=True, text=True
        ).stdout:
            cmd += ["--real-data", str(REAL_DATA)]
        print(f"\n## {script.name}\n\n$ {' '.join(cmd)}\n", flush=True)
        if subprocess.run(cmd).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
