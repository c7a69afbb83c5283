"""``lowvram-r1 health RUN [--json]``: the run's health findings, worst first, read from its run directory.

    lowvram-r1 health runs/countdown-tiny-20260101-120000
    lowvram-r1 health NAME --json        # [{"id", "severity", "evidence", "advice"}, ...]; [] on a healthy run

Works on a finished run and on one still training (it reads what was written so far). Exit code 0 either way;
2 when RUN is not a run directory. docs/health.md explains every finding.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lowvram_r1.runs import RunDir
from lowvram_r1.runs.files import is_real_dir, is_regular


def add(subparsers: argparse._SubParsersAction) -> None:
    health = subparsers.add_parser(
        "health", help="diagnose a run: truncation, no learning signal, reward hacking, ... with what to change"
    )
    health.add_argument("run", metavar="RUN", help="the run directory (or its name under runs/)")
    health.add_argument("--json", action="store_true", help="print the findings as a JSON list")


def run_dir(text: str) -> RunDir:
    """RUN as given, else runs/RUN; a clear error when neither is one of our runs."""
    for path in (Path(text), Path("runs") / text):
        run = RunDir(path)
        # read-only: a folder with our files is enough (writers need our marker: lowvram_r1.runs.ownership)
        if is_real_dir(path) and (is_regular(run.config) or is_regular(run.status_file)):
            return run
    raise ValueError(f"{text} is not a run directory (no config.yaml or status.json): see `lowvram-r1 runs`")


def run(args: argparse.Namespace) -> int:
    from lowvram_r1.runs.health import diagnose
    from lowvram_r1.runs.reader import RunCache

    run = run_dir(args.run)
    cache = RunCache(run.path)
    cache.refresh()
    findings = diagnose(cache)
    if args.json:
        print(json.dumps([f.to_dict() for f in findings], indent=1))
        return 0
    train, _ = cache.split_metrics()
    covered = f"steps {train[0]['step']}-{train[-1]['step']}" if train else "no training step logged yet"
    if not findings:
        print(f"{run.path}: no finding ({covered})")
        return 0
    print(f"{run.path}: {len(findings)} finding{'s' if len(findings) > 1 else ''} ({covered}), worst first")
    for finding in findings:
        steps = finding.evidence.get("steps") or []
        where = f" [steps {steps[0]}-{steps[-1]}]" if steps else ""
        print(f"\n{finding.severity.upper():8} {finding.id}{where}: {finding.evidence.get('summary', '')}")
        print(f"         -> {finding.advice}")
    return 0
