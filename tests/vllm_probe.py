"""Run by tests/rollout/test_rollout.py in a child process (vLLM binds the process's threads, so it gets its own):
a short GRPO run through ``engine.train`` with ``use_vllm``, probing at every rollout batch that vLLM serves
the trainer's *current* adapter.

    python tests/vllm_probe.py MODEL_DIR OUT_DIR STEPS [4bit]     # writes OUT_DIR/probe.json
    python tests/vllm_probe.py MODEL_DIR OUT_DIR STEPS 16bit http://127.0.0.1:PORT   # --vllm-mode server

At each rollout batch (after TRL's weight sync) it scores one fixed prompt + completion twice: with vLLM
(``VLLMEngine.score``, the adapter vLLM serves) and with the trainer's own model (a forward pass of the peft
model being trained); in server mode vLLM's side is the server's score of the adapter it serves. The test
compares them step by step. Each held-out eval (greedy, through vLLM as training runs it) is also redone with
transformers ``generate`` on the trainer's model, for the test to compare.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any


def trainer_logprobs(model: Any, prompt_ids: list[int], completion_ids: list[int]) -> list[float]:
    import torch

    ids = torch.tensor([prompt_ids + completion_ids], device=model.device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
    model.train(was_training)
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(completion_ids)[:, None]).squeeze(-1)
    return logprobs.tolist()


def main(model: str, out: str, steps: int, four_bit: bool = False, server: str | None = None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests.* imports
    from lowvram_r1.rollout.trl_rollout import VLLMRollout
    from lowvram_r1.train import engine
    from lowvram_r1.train import evaluate as evaluation
    from tests.train.test_train import small_config

    logging.basicConfig(level=logging.INFO)
    out_dir = Path(out)
    cfg = small_config(
        Path(model),
        out_dir / "run",
        max_steps=steps,
        eval_size=16,
        eval_temperature=0.0,
        use_vllm=True,
        vllm_gpu_memory_utilization=0.1,
        learning_rate=2e-2,
        save_steps=100,
        load_in_4bit=four_bit,
        **({"vllm_mode": "server", "vllm_server_url": server} if server else {}),
    )
    evals: list[dict[str, Any]] = []
    real_evaluate = evaluation.evaluate

    def both_ways(*args: Any, generator: Any = None, **kwargs: Any) -> dict[str, Any]:
        """The held-out eval as training runs it (through vLLM) and again with transformers generate."""
        by_vllm = real_evaluate(*args, generator=generator, **kwargs)
        by_transformers = real_evaluate(*args, **kwargs)
        keys = ("accuracy", "format_rate", "mean_length")
        evals.append(
            {
                "via_vllm": generator is not None,
                "vllm": {k: by_vllm[k] for k in keys},
                "transformers": {k: by_transformers[k] for k in keys},
            }
        )
        return by_vllm

    evaluation.evaluate = both_ways
    probes: list[dict[str, Any]] = []
    fixed: dict[str, list[int]] = {}
    original = VLLMRollout.__call__

    def probing(self: VLLMRollout, prompts: list[Any], trainer: Any) -> dict[str, list]:
        output = original(self, prompts, trainer)
        if not fixed:  # the first rollout of the run, frozen: scored again at every later step
            fixed["prompt"], fixed["completion"] = output["prompt_ids"][0], output["completion_ids"][0]
        model = trainer.accelerator.unwrap_model(trainer.model)
        probes.append(
            {
                "step": trainer.state.global_step,
                "adapter_version": self.engine.version,
                "vllm": self.engine.score(fixed["prompt"], fixed["completion"]),
                "trainer": trainer_logprobs(model, fixed["prompt"], fixed["completion"]),
                "completions": len(output["completion_ids"]),
            }
        )
        return output

    VLLMRollout.__call__ = probing
    summary = engine.train(cfg, progress=False)
    (out_dir / "probe.json").write_text(json.dumps({"summary": summary, "probes": probes, "evals": evals}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:5] == ["4bit"], (sys.argv[5:6] or [None])[0])
