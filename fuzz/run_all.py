"""The long fuzzing run: every target in turn for ``--minutes`` each, restarted after a crash, with a summary.

    nice -n 19 python fuzz/run_all.py --minutes 5 --work /tmp/deltanet-fuzz

New inputs go to ``WORK/corpus/<target>`` (the kept seeds are read, not
written), crashing inputs to ``WORK/crash-<target>-*``. Prints and writes
``WORK/summary.json``: per target the inputs tried (libFuzzer's
``number_of_executed_units``, summed over restarts), seconds, crashes.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ["model", "checkpoint", "config", "csv", "npz", "idx"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="per target")
    ap.add_argument("--work", type=Path, default=Path("/tmp/deltanet-fuzz"))
    ap.add_argument("--targets", default=",".join(TARGETS))
    args = ap.parse_args(argv)
    summary = {}
    for target in args.targets.split(","):
        new = args.work / "corpus" / target
        new.mkdir(parents=True, exist_ok=True)
        end = time.monotonic() + args.minutes * 60
        tried, crashes, started = 0, [], time.monotonic()
        while (left := end - time.monotonic()) > 5:
            cmd = [sys.executable, str(HERE / f"fuzz_{target}.py"), str(new), str(HERE / "corpus" / target),
                   f"-max_total_time={int(left)}", "-timeout=10", "-print_final_stats=1",
                   f"-artifact_prefix={args.work}/crash-{target}-"]
            run = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            units = re.findall(r"stat::number_of_executed_units:\s*(\d+)", run.stderr)
            done = re.findall(r"#(\d+)\s", run.stderr)
            tried += int(units[-1]) if units else (int(done[-1]) if done else 0)
            if run.returncode != 0:
                artifact = re.findall(r"Test unit written to (\S+)", run.stderr)
                error = [line for line in run.stderr.splitlines() if "DirtyError:" in line or "Error" in line][-1:]
                crashes.append({"input": artifact[-1] if artifact else None, "error": error[0] if error else run.stderr[-500:]})
                (args.work / f"crash-{target}-{len(crashes)}.log").write_text(run.stderr[-20000:])
                if len(crashes) >= 20:
                    break
        summary[target] = {"inputs": tried, "seconds": round(time.monotonic() - started), "crashes": crashes,
                           "corpus": len(list(new.iterdir()))}
        print(f"{target:10s} {tried:10d} inputs  {summary[target]['seconds']:5d} s  {len(crashes)} crashes", flush=True)
        (args.work / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"total      {sum(s['inputs'] for s in summary.values()):10d} inputs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
