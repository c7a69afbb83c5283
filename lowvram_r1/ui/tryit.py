"""Try a run's adapter on one question: ``python -m lowvram_r1.ui.tryit runs/NAME [--question=TEXT]``.

The panel runs this in a child process (the panel itself never imports torch) and reads the one JSON line it
prints: the question, the prompt the model saw, its completion and, for a held-out problem, whether the task's
check accepts it. Without a question it answers a held-out problem of the run's task. Works with the tiny model
on CPU (the adapter loads on top of the run's base model, as ``lowvram-r1 eval`` does).

The panel hands the question over on stdin as a JSON string (``--question-stdin``), never on the command line:
any text is a question there, one that starts with ``-``, holds a NUL byte or runs to pages included.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

TIMEOUT_S = 600
MAX_QUESTION_CHARS = 20_000  # a few pages: past any model context the panel's runs have


def run_in_child(run_dir: Path, question: str | None, seed: int = 0, cwd: Path | None = None) -> dict[str, Any]:
    """What the panel calls: :func:`lowvram_r1.train.evaluate.answer` in a child process (argument list, no shell);
    errors come back as ``error``."""
    if question is not None and len(question) > MAX_QUESTION_CHARS:
        return {"error": f"the question has {len(question)} characters; at most {MAX_QUESTION_CHARS}: shorten it"}
    args = [sys.executable, "-m", "lowvram_r1.ui.tryit", "--seed", str(seed)]
    args += ["--question-stdin"] if question is not None else []
    stdin = json.dumps(question)  # ASCII, any text: read back as exactly this string ("null" without a question)
    try:
        done = subprocess.run(
            [*args, "--", str(run_dir)],
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=TIMEOUT_S,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"no answer within {TIMEOUT_S} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": tail}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lowvram_r1.ui.tryit", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="runs/NAME")
    parser.add_argument(
        "--question",
        help="your own question (default: a held-out problem of the run's task); --question=-TEXT for "
        "one that starts with '-'",
    )
    parser.add_argument("--question-stdin", action="store_true", help="read the question from stdin, a JSON string")
    parser.add_argument("--seed", type=int, default=0, help="which held-out problem")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    args = parser.parse_args(argv)
    if args.question_stdin:
        try:
            args.question = json.loads(sys.stdin.read())
        except ValueError:
            args.question = None  # not JSON: refused just below
        if not isinstance(args.question, str):
            parser.error('--question-stdin reads the question from stdin as a JSON string, e.g. "-3 apples?"')
    from lowvram_r1.logs import quiet_libraries

    quiet_libraries(False)
    try:
        from lowvram_r1.train.evaluate import answer

        result = answer(Path(args.run_dir), args.question, args.seed, args.temperature)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, default=str))  # ASCII: any text the model wrote survives the pipe
    return 0


if __name__ == "__main__":
    sys.exit(main())
