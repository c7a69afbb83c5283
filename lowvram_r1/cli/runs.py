"""``lowvram-r1 runs``: the run directories with their status, step, reward and accuracy.

lowvram-r1 runs [--root runs]
"""

from __future__ import annotations

import argparse

from lowvram_r1.cli.output import num, pct


def add(subparsers: argparse._SubParsersAction) -> None:
    runs = subparsers.add_parser("runs", help="list run directories")
    runs.add_argument("--root", default="runs", help="folder holding run directories (default: runs)")


def run(args: argparse.Namespace) -> int:
    from lowvram_r1.runs.summary import list_runs, summarize

    rows = [summarize(run) for run in list_runs(args.root)]
    if not rows:
        print(f"no runs under {args.root}/")
        return 0
    print(f"{'run':<44} {'status':<9} {'step':>9} {'procs':>5} {'reward':>7} {'accuracy':>15}")
    for r in rows:
        step = f"{r['step']}/{r['max_steps'] or '?'}"
        accuracy = f"{pct(r['accuracy_start'])} -> {pct(r['accuracy'])}" if r["accuracy"] is not None else "-"
        print(f"{r['name']:<44} {r['status']:<9} {step:>9} {r['processes']:>5} {num(r['reward']):>7} {accuracy:>15}")
    return 0
