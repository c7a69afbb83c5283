"""The GPU check kit's report and data: ``gpu_check.json`` / ``gpu_check.md`` (written whole, by rename, so a killed
kit leaves the last complete report) and the GSM8K-style prompts its cases train on. Used by ``bench/gpu_check.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPORT_FILES = ("gpu_check.json", "gpu_check.md")


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Both report files, each written to a temporary name in ``out`` and renamed over the old one."""
    for name, text in zip(REPORT_FILES, (json.dumps(report, indent=1), markdown(report)), strict=True):
        partial = out / f".{name}.partial"
        partial.write_text(text)
        os.replace(partial, out / name)


def write_data(path: Path) -> Path:
    """GSM8K-style rows whose prompts are ~256 tokens for the byte-level tokenizer (numbers vary per row)."""
    filler = " Each box holds the same number of items, and nothing is lost or added on the way."
    rows = [
        {
            "question": f"Ann packs {i % 17 + 2} boxes of {i % 9 + 3} apples." + filler * 2 + " How many apples?",
            "answer": f"#### {(i % 17 + 2) * (i % 9 + 3)}",
        }
        for i in range(300)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def case_name(r: dict[str, Any]) -> str:
    what = r.get("setup") or f"{r['recipe']} under {r['cap_gb']} GB"
    extra = f" [{r['backend']}]" if "backend" in r else ""
    extra += f" [{r['task']}]" if "task" in r else ""
    extra += " [vLLM server]" if r.get("server") else ""
    return f"{r['id']}: {r['shape']} {what}{extra}"


def ratio(planned: float | None, measured: float | None) -> str:
    return f"{planned / measured:.2f}" if planned and measured else "–"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"GPU check on {report['device']}, {report['date']}, commit {report['commit']}",
        "",
        "| case | outcome | planned GB | allocated GB | reserved GB | device peak GB | planned / measured "
        "| planned / allocated | CUDA runtime: planned / measured GB | s/step | gen tok/s | plan fits "
        "| verdict right |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        measured = r.get("device_peak_gb") or r.get("peak_rss_gb")
        runtime = f"{r['plan_cuda_runtime_gb']} / {r['runtime_measured_gb']}" if "runtime_measured_gb" in r else "–"
        right = "–"
        if r.get("part") == "verdict" and r.get("outcome") in ("ran", "out of memory"):
            right = "yes" if (r["outcome"] == "ran") == bool(r.get("plan_fits")) else "NO"
        lines.append(
            f"| {case_name(r)} | {r.get('outcome') or 'not started'} | {r.get('planned_gb', '–')} | "
            f"{r.get('allocated_gb', '–')} | {r.get('reserved_gb', '–')} | "
            f"{r.get('device_peak_gb', r.get('peak_rss_gb', '–'))} | {ratio(r.get('planned_gb'), measured)} | "
            f"{ratio(r.get('planned_gb'), r.get('allocated_gb'))} | {runtime} | "
            f"{r.get('seconds_per_step', '–')} | {r.get('tokens_per_s', '–')} | {r.get('plan_fits', '–')} | "
            f"{right} |"
        )
    if any("peak_rss_gb" in r for r in report["results"]):
        lines.append(
            "\nCPU mode: measured is the process's peak RSS (the model stack included, in the device peak "
            "column); planned is the CPU plan."
        )
    lines.append(
        "\nDevice peak: max_memory_reserved + the device memory held outside torch's allocator at the end "
        "(CUDA context, library handles; device-wide, so a vLLM server's share counts in the server case). The plan "
        "includes a safety margin and an unmeasured CUDA-runtime allowance (the CUDA runtime column: that allowance "
        "against context + reserved - allocated). A failed or timed-out case keeps the end of its log in "
        "gpu_check.json."
    )
    return "\n".join(lines) + "\n"


def device_from_driver() -> str:
    """The GPU's name from nvidia-smi (the kit's parent holds no CUDA context: it would count in every case)."""
    from lowvram_r1.models.hardware import gpus_without_context

    gpus = gpus_without_context()
    return gpus[0][0] if gpus else "no GPU in nvidia-smi"


def commit(root: Path) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        return done.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
