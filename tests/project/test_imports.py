"""The light modules import without the model stack (viewers and reward code must not pull in torch)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ["torch", "transformers", "trl", "peft", "unsloth", "vllm", "datasets"]


def test_light_modules_import_without_torch_trl_or_vllm() -> None:
    code = (
        "import sys\n"
        "import lowvram_r1, lowvram_r1.config, lowvram_r1.tasks, lowvram_r1.rewards, lowvram_r1.runs\n"
        "from lowvram_r1.tasks import TASKS\n"
        "assert TASKS['countdown'].check('<answer>1 + 2</answer>', {'nums': [1, 2], 'target': 3})\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_shaping_rewards_and_run_readers_import_without_torch() -> None:
    """trl.rewards is lazy (it loads neither torch nor transformers); the run readers and lifecycle are pure Python."""
    code = (
        "import sys\n"
        "import lowvram_r1.runs.reader, lowvram_r1.runs.lifecycle, lowvram_r1.runs.summary\n"
        "from lowvram_r1 import config\n"
        "from lowvram_r1.rewards.shaping import shaping_rewards\n"
        "funcs = shaping_rewards(config.load(None, {'overlong_buffer': 8, 'ngram_penalty': -1.0}).task, 32)\n"
        "assert len(funcs) == 2 and funcs[0](completion_ids=[[1] * 40]) == [-1.0]\n"
        "print([m for m in ['torch', 'transformers'] if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
