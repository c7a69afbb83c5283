"""The GPU check kit: one prepared command that measures, the moment a GPU machine is lent, what only a GPU can show.

    python bench/gpu_check.py --out OUT               # GPU, hf backend: planner verdicts first, then memory vs plan
    python bench/gpu_check.py --out OUT --unsloth     # GPU, second command: the Unsloth backend beside hf
    python bench/gpu_check.py --out OUT --cases measure,search --budget-minutes 5   # a chosen part
    python bench/gpu_check.py --out OUT --cpu         # the same plumbing on tiny shapes on CPU (CI runs it)
    bash bench/prepare_gpu_wheels.sh                  # the wheels a bare GPU machine needs (docs/gpu-check-kit.md)

Before starting it prints each case with its estimated seconds and whether it fits ``--budget-minutes`` (default 8:
one 600 s command with room for the wheel install); cases past the budget are listed as skipped, never guessed.
Cases run in this order, each in a fresh process (``bench/gpu_check_case.py``) through ``engine.train``:

1. ``verdict``: the process capped to a 16, 8 and 6 GB card runs the shipped gsm8k recipe of that tier (one step),
   and one config the planner says does not fit runs anyway and must run out of memory: was the plan right?
2. ``measure``: Qwen2.5-0.5B and -1.5B shapes, 8 completions of 256 tokens: LoRA bf16, QLoRA NF4, the T4's fp16
   path, and on 1.5B QLoRA with offloaded checkpointing; ``max_memory_allocated`` / ``reserved`` and the device peak
   beside the plan, seconds per step, generation tokens/s.
3. ``search``: ``search_r1`` on the 0.5B shape (multi-turn rollouts, retrieved tokens masked), plan beside peak.
4. ``server``: rollouts from a vLLM server on the same GPU, when vLLM is installed (it cannot travel as a wheel:
   skipped with that reason otherwise).
5. ``unsloth`` (``--unsloth``): the Unsloth backend (no vLLM) beside hf on the 0.5B shape.

Models are random-weight folders of the planner's shapes (no hub), built in a ``--work`` folder outside ``--out``
(default /tmp/lowvram-r1-gpu-check: a second command on the same machine reuses them); ``--out`` receives only
``gpu_check.json`` and ``gpu_check.md``, rewritten before and after every case, so a killed kit leaves every
finished case and names the one that was running. A case past its time is killed and recorded as timed out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check_report import case_name as describe  # noqa: E402
from gpu_check_report import commit, device_from_driver, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CASE_SCRIPT = Path(__file__).resolve().parent / "gpu_check_case.py"
DEFAULT_WORK = Path("/tmp/lowvram-r1-gpu-check")
BUILD_SECONDS = {"qwen2.5-0.5b": 20, "qwen2.5-1.5b": 30, "qwen2.5-3b": 45, "tiny": 30}
PARTS = ("verdict", "measure", "search", "server", "unsloth")


def gpu_cases() -> list[dict[str, Any]]:
    cases = [  # the planner's verdicts first: the figures we most need
        {"id": f"v{tier}", "part": "verdict", "shape": shape, "recipe": f"gsm8k/{tier}gb", "cap_gb": tier}
        for tier, shape in ((16, "qwen2.5-3b"), (8, "qwen2.5-1.5b"), (6, "qwen2.5-1.5b"))
    ]
    cases.append(  # the plan says no: it must run out of memory
        {"id": "v6-no", "part": "verdict", "shape": "qwen2.5-3b", "recipe": "gsm8k/16gb", "cap_gb": 6}
    )
    for case, est in zip(cases, (150, 100, 90, 60), strict=True):
        case.update(steps=1, est_s=est)
    setups = {
        "qwen2.5-0.5b": ("LoRA bf16 + ckpt", "QLoRA nf4 + ckpt", "fp16 (T4 path)"),
        # the 6 and 8 GB recipes' model: QLoRA with the layer inputs offloaded beside plain checkpointing
        "qwen2.5-1.5b": ("LoRA bf16 + ckpt", "QLoRA nf4 + ckpt", "QLoRA nf4 + offload", "fp16 (T4 path)"),
    }
    cases += [
        {"id": f"m{s[6:]}-{i}", "part": "measure", "shape": s, "setup": u, "steps": 3, "est_s": 45}
        for s, names in setups.items()
        for i, u in enumerate(names)
    ]
    base = {"shape": "qwen2.5-0.5b", "setup": "LoRA bf16 + ckpt", "steps": 3}
    cases.append({**base, "id": "search", "part": "search", "task": "search_r1", "est_s": 60})
    cases.append({**base, "id": "server", "part": "server", "server": True, "est_s": 120})
    return cases


def unsloth_cases(shape: str = "qwen2.5-0.5b") -> list[dict[str, Any]]:
    setups = ("LoRA bf16 + ckpt", "QLoRA nf4 + ckpt") if shape != "tiny" else ("LoRA fp32 + ckpt",)
    return [
        {"id": f"u{i}-{b}", "part": "unsloth", "shape": shape, "setup": u, "backend": b, "steps": 3, "est_s": 50}
        | ({"timeout_s": 1800} if shape == "tiny" else {})
        for i, u in enumerate(setups)
        for b in ("unsloth", "hf")
    ]


def cpu_cases() -> list[dict[str, Any]]:
    cases = [
        # CPU speed varies widely (CI, laptops): generous timeouts, so only a stuck case times out
        {"id": f"c{i}", "part": "measure", "shape": "tiny", "setup": u, "steps": 2, "est_s": 90, "timeout_s": 1800}
        for i, u in enumerate(("LoRA fp32 + ckpt", "QLoRA nf4 + ckpt (CPU)"))
    ]
    cases.append({**cases[0], "id": "search", "part": "search", "task": "search_r1"})
    return cases


def skip_reason(case: dict[str, Any]) -> str | None:
    """Why a case cannot run on this machine at all (None: it can)."""
    import importlib.util

    if case.get("server") and importlib.util.find_spec("vllm") is None:
        return "skipped: vLLM is not installed here (it cannot travel as a wheel)"
    return None


def select(cases: list[dict[str, Any]], wanted: str | None) -> list[dict[str, Any]]:
    """The cases ``--cases`` names (ids or parts, comma-separated), in the kit's order."""
    if not wanted:
        return cases
    names = {w.strip() for w in wanted.split(",") if w.strip()}
    unknown = names - {c["id"] for c in cases} - set(PARTS)
    if unknown:
        raise SystemExit(f"--cases: unknown {', '.join(sorted(unknown))}; ids: {', '.join(c['id'] for c in cases)}")
    return [c for c in cases if c["id"] in names or c["part"] in names]


def schedule(cases: list[dict[str, Any]], budget_s: float) -> list[bool]:
    """Which cases fit the budget by their estimates (model builds included), in order; a case that does not fit
    is skipped and the ones after it may still fit."""
    used, built, fits = 0.0, set(), []
    for case in cases:
        cost = case["est_s"] + (0 if case["shape"] in built else BUILD_SECONDS.get(case["shape"], 45))
        ok = skip_reason(case) is not None or used + cost <= budget_s
        if ok and skip_reason(case) is None:
            used += cost
            built.add(case["shape"])
        fits.append(ok)
    return fits


class Child:
    """A case's process, in a session of its own so that a timeout ends it and whatever it started (a vLLM server)."""

    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        command = [sys.executable, str(CASE_SCRIPT), *args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
        )

    def finish(self, timeout: float) -> tuple[str | None, str, str]:
        """(None or "timed out", stdout, stderr)."""
        try:
            out, err = self.process.communicate(timeout=max(1.0, timeout))
            return None, out, err
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.process.communicate()
            return "timed out", out, err

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_cases(cases: list[dict[str, Any]], fits: list[bool], args: argparse.Namespace, report: dict) -> None:
    work, out = Path(args.work), Path(args.out)
    data = work / "gsm8k.jsonl"
    if not data.is_file():
        from gpu_check_report import write_data

        write_data(data)
    start = time.monotonic()
    hard_stop = start + 60 * args.budget_minutes + 30  # no case outlives the budget by more than this
    results = report["results"]
    for index, (case, fit) in enumerate(zip(cases, fits, strict=True)):
        row = results[index]
        reason = skip_reason(case)
        elapsed = time.monotonic() - start
        if reason or not fit or elapsed + case["est_s"] > 60 * args.budget_minutes:
            row["outcome"] = reason or "skipped (time budget)"
            write_report(out, report)
            continue
        model = work / f"model-{case['shape']}"
        folder = work / f"case-{case['id']}"
        if not (model / "config.json").is_file():
            build = ["build", case["shape"], str(model)]
            label = f"running: building the {case['shape']} model (a killed kit leaves this)"
            built, _, err = run_child(build, hard_stop - time.monotonic(), row, report, out, label)
            if built or not (model / "config.json").is_file():
                row["outcome"] = f"failed: model build {built or ''} {last_line(err)}".strip()
                write_report(out, report)
                continue
        timeout = min(case.get("timeout_s", 3 * case["est_s"]), hard_stop - time.monotonic())
        if case["id"] in args.stall:
            case, timeout = {**case, "stall": True}, args.stall[case["id"]]
        shutil.rmtree(folder, ignore_errors=True)  # a case of an earlier command on this machine: start afresh
        command = ["run", json.dumps(case), str(model), str(data), str(folder)]
        ended, stdout, stderr = run_child(command, timeout, row, report, out)
        line = next((ln for ln in stdout.splitlines() if ln.startswith("RESULT ")), None)
        if ended:
            figures = {"outcome": f"timed out after {timeout:.0f} s", "log": stderr[-2000:]}
        elif line:
            figures = json.loads(line[7:])
        else:
            figures = {"outcome": f"failed: {last_line(stderr)}", "log": stderr[-4000:]}
        row.pop("child_pid", None)
        row.update(figures)
        report["device"] = figures.get("device", report["device"])
        write_report(out, report)
        print(f"[{index + 1}/{len(cases)}] {describe(case)}: {row['outcome']}", flush=True)


RUNNING = "running (a killed kit leaves this)"


def run_child(
    argv: list[str], timeout: float, row: dict, report: dict, out: Path, label: str = RUNNING
) -> tuple[str | None, str, str]:
    """Run one child, the report saying so (and its pid) while it runs; (None or "timed out", stdout, stderr)."""
    child = Child(argv)
    row["child_pid"], row["outcome"] = child.process.pid, label
    write_report(out, report)
    try:
        return child.finish(timeout)
    finally:
        child.kill()  # a server the case started, if the case itself ended without stopping it
        row.pop("child_pid", None)


def last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1][-200:]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for gpu_check.json / gpu_check.md (nothing else)")
    parser.add_argument("--work", default=str(DEFAULT_WORK), help=f"models and runs (default {DEFAULT_WORK})")
    parser.add_argument("--cpu", action="store_true", help="tiny shapes on CPU (what CI runs)")
    parser.add_argument("--unsloth", action="store_true", help="the Unsloth backend beside hf (second command)")
    parser.add_argument("--cases", help=f"only these case ids or parts ({', '.join(PARTS)}), comma-separated")
    parser.add_argument(
        "--budget-minutes", type=float, help="start no case past this (default 8: one 600 s command; --cpu: 120)"
    )
    parser.add_argument("--stall", action="append", default=[], help=argparse.SUPPRESS)  # ID:SECONDS, rehearsal
    args = parser.parse_args(argv)
    args.stall = {s.split(":")[0]: float(s.split(":")[1]) for s in args.stall}
    if args.budget_minutes is None:
        args.budget_minutes = 120.0 if args.cpu else 8.0
    out, work = Path(args.out).resolve(), Path(args.work).resolve()
    if work == out or out in work.parents:
        parser.error(f"--work {work} is inside --out {out}: the report folder holds the report only")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    shape = "tiny" if args.cpu else "qwen2.5-0.5b"
    cases = unsloth_cases(shape) if args.unsloth else cpu_cases() if args.cpu else gpu_cases()
    cases = select(cases, args.cases)
    fits = schedule(cases, 60 * args.budget_minutes)
    print(f"GPU check: {len(cases)} cases, budget {args.budget_minutes:g} min (estimates, models built included):")
    for case, fit in zip(cases, fits, strict=True):
        status = skip_reason(case) or ("will run" if fit else "skipped (time budget)")
        print(f"  {case['id']:<10} ~{case['est_s']:>4} s  {describe(case)}: {status}", flush=True)
    device = "CPU (no CUDA GPU)" if args.cpu else device_from_driver()
    report = {"device": device, "date": time.strftime("%Y-%m-%d"), "commit": commit(ROOT), "results": []}
    report["results"] = [{**c, "outcome": None} for c in cases]
    write_report(Path(args.out), report)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a SIGTERM still runs the finally below
    try:
        run_cases(cases, fits, args, report)
    finally:
        write_report(Path(args.out), report)
    print((Path(args.out) / "gpu_check.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
