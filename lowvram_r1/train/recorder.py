"""RunRecorder: the TRL/transformers callback that writes the run directory while GRPO trains.

It turns each TRL log into a metrics line, each logged batch into completion records (read from the
trainer's own completion buffer, which holds exactly the last generation batch), marks checkpoints complete,
runs the periodic held-out evaluation, draws the progress bar and honours the run session's stop requests (a STOP
file from a viewer, or SIGTERM: :mod:`lowvram_r1.runs.lifecycle`) by saving and stopping at the next step boundary.
Every stage (GRPO, SFT) records through it.

With several processes (``accelerate launch``) every process runs it: the main one alone writes (TRL's logs and its
completion buffer already hold every process's values), each completion is recorded with the index of the process
that generated it, all of them stop at the same step when any sees a stop request, and a checkpoint is marked
complete once every process has written its part of it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from transformers import PrinterCallback, TrainerCallback

from lowvram_r1.rewards.monitor import CHECK_REWARD
from lowvram_r1.runs import RunDir, append_jsonl
from lowvram_r1.runs.files import is_real_dir, write_file
from lowvram_r1.runs.lifecycle import RunSession
from lowvram_r1.train.distributed import Processes

logger = logging.getLogger(__name__)


def _text(message: Any) -> str:
    if isinstance(message, str):
        return message
    if isinstance(message, list):
        return "\n".join(
            f"{m.get('role', '')}: {m.get('content', '')}" if isinstance(m, dict) else str(m) for m in message
        )
    return str(message)


def memory_figures() -> dict[str, float]:
    """On a CUDA GPU, in GB: the trainer's peak reserved memory since the last call and what it reserves now, the
    whole card's use now (vLLM's share included) and its size (run health's memory_headroom); nothing elsewhere."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    free, total = torch.cuda.mem_get_info()
    peak = torch.cuda.max_memory_reserved()
    torch.cuda.reset_peak_memory_stats()
    return {
        "memory/peak_reserved_gb": round(peak / 1e9, 3),
        "memory/reserved_gb": round(torch.cuda.memory_reserved() / 1e9, 3),
        "memory/device_used_gb": round((total - free) / 1e9, 3),
        "memory/device_total_gb": round(total / 1e9, 3),
    }


class RunRecorder(TrainerCallback):
    """Writes metrics.jsonl, completions.jsonl and status.json; see :mod:`lowvram_r1.runs` for the format."""

    def __init__(
        self,
        session: RunSession,
        evaluate: Callable[[Any], dict[str, Any]] | None = None,
        eval_steps: int = 0,
        progress: bool = True,
        stage: str = "GRPO",
        processes: Processes | None = None,
    ) -> None:
        self.session = session
        self.processes = processes or Processes()
        self.main = self.processes.main
        self.run: RunDir = session.run
        self.evaluate = evaluate
        self.eval_steps = eval_steps
        self.progress = progress
        self.stage = stage  # the progress bar's label
        self.trainer: Any = None
        self._step_started = time.monotonic()
        self._generation_seconds = 0.0  # spent generating since the last metrics line
        self._bar: Any = None

    def attach(self, trainer: Any) -> None:
        """Give the recorder the trainer whose completion buffer it reads (callbacks are built before it)."""
        self.trainer = trainer
        trainer.remove_callback(PrinterCallback)  # the recorder reports; transformers would print raw log dicts
        generate = getattr(trainer, "_generate", None)  # TRL's rollout entry (tests/backends/test_api_guard.py pins it)
        if generate is not None:

            def timed_generate(*args: Any, **kwargs: Any) -> Any:
                started = time.monotonic()
                try:
                    return generate(*args, **kwargs)
                finally:
                    self._generation_seconds += time.monotonic() - started

            trainer._generate = timed_generate  # run health compares it with step_time (slow_rollouts)

    # -- callback hooks ----------------------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.main:
            return
        self.run.write_status(
            state="running", step=state.global_step, max_steps=state.max_steps, processes=self.processes.count
        )
        if self.progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=state.max_steps,
                initial=state.global_step,
                desc=self.stage,
                unit="step",
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step_started = time.monotonic()
        self.session.commit_config()  # a resume: the checkpoint (weights, optimizer, RNG) loaded; config.yaml now

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step_seconds = time.monotonic() - self._step_started
        if self.processes.any(self.session.should_stop()):  # every process stops at this same step
            self.session.request_stop()
            logger.info("stop requested: saving a checkpoint at step %d and stopping", state.global_step)
            control.should_save = True
            control.should_training_stop = True
        if (
            self.evaluate
            and self.eval_steps
            and state.global_step % self.eval_steps == 0
            and state.global_step < state.max_steps
        ):
            self.record_eval(state.global_step, self.evaluate(kwargs.get("model")))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "train_runtime" in logs or not ({"reward", "loss"} & set(logs)):  # the end-of-training summary
            return
        if not self.main:  # the main process's logs are already averaged over every process
            return
        record = {
            "kind": "train",
            "step": state.global_step,
            "time": time.time(),
            "step_time": round(getattr(self, "_step_seconds", 0.0), 4),
            **logs,
        }
        accuracy = logs.get(f"rewards/{CHECK_REWARD}/mean")
        if accuracy is not None:
            record["train_accuracy"] = accuracy
        record["generation_time"] = round(self._generation_seconds, 4)
        self._generation_seconds = 0.0
        record.update(memory_figures())
        append_jsonl(self.run.metrics, [record])
        append_jsonl(self.run.completions, self._completion_records(state.global_step))
        self.run.write_status(step=state.global_step, reward=logs.get("reward"))
        if self._bar is not None:
            shown = {"reward": logs.get("reward"), "acc": accuracy} if "reward" in logs else {"loss": logs.get("loss")}
            self._bar.set_postfix({k: f"{v:.3f}" for k, v in shown.items() if v is not None}, refresh=False)
            self._bar.update(state.global_step - self._bar.n)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.processes.wait()  # every process has written its part (its RNG state) before the checkpoint counts
        checkpoint = self.run.checkpoints / f"checkpoint-{state.global_step}"
        if self.main and is_real_dir(checkpoint):
            # written last: resume trusts only checkpoints marked complete
            write_file(checkpoint / RunDir.CHECKPOINT_COMPLETE, str(state.global_step))  # never through a link
            self.run.write_status(checkpoint=checkpoint.name)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- helpers ----------------------------------------------------------------------------------------------
    def record_eval(self, step: int, result: dict[str, Any]) -> None:
        if not self.main:
            return
        fields = {k: v for k, v in result.items() if k != "examples"}
        append_jsonl(self.run.metrics, [{"kind": "eval", "step": step, "time": time.time(), **fields}])

    def _completion_records(self, step: int) -> list[dict[str, Any]]:
        if self.stage != "GRPO":
            return []  # SFT and the other stages generate nothing to record
        # TRL's private buffer of the last generation batch (tests/backends/test_api_guard.py pins it): if it moves,
        # say so rather than record nothing in silence
        if not hasattr(self.trainer, "_logs"):
            raise RuntimeError(
                f"{type(self.trainer).__name__} has no _logs (TRL's buffer of the last batch's completions): this "
                "TRL is not the pinned 1.15.0; pip install 'trl==1.15.0'"
            )
        logs = self.trainer._logs
        if not logs or not logs.get("completion"):
            return []
        prompts, completions = list(logs["prompt"]), list(logs["completion"])
        # With num_iterations > 1 one generation batch serves several steps: record it once.
        batch_key = (len(completions), str(completions[:1]), str(completions[-1:]))
        if batch_key == getattr(self, "_last_batch", None):
            return []
        self._last_batch = batch_key
        rewards = {name: list(values) for name, values in logs["rewards"].items()}
        advantages = list(logs["advantages"])
        weights = getattr(self.trainer, "reward_weights", None)
        names = list(rewards)
        # TRL gathers each process's equal share of the batch in process order: row i came from process i // share
        share = max(1, len(completions) // self.processes.count)
        records = []
        for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            per_reward = {name: rewards[name][i] for name in names if i < len(rewards[name])}
            total = None
            if weights is not None and len(per_reward) == len(weights):
                total = sum(
                    float(w) * (v if v == v else 0.0)
                    for w, v in zip(weights.tolist(), per_reward.values(), strict=True)
                )
            records.append(
                {
                    "step": step,
                    "prompt": _text(prompt),
                    "completion": _text(completion)
                    if not isinstance(completion, list)
                    else "".join(m.get("content", "") for m in completion if isinstance(m, dict)),
                    "rewards": {k: v for k, v in per_reward.items() if k != CHECK_REWARD},
                    "reward": total,
                    "advantage": advantages[i] if i < len(advantages) else None,
                    "correct": bool(per_reward.get(CHECK_REWARD)) if CHECK_REWARD in per_reward else None,
                    "process": min(i // share, self.processes.count - 1),
                }
            )
        return records
