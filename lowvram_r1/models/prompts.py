"""A prompt as the model sees it: the one place chat templates are applied for generation (training rollouts,
held-out evaluation, the tokenizer-only length check), so every path renders prompts alike."""

from __future__ import annotations

from typing import Any


def prompt_text(tokenizer: Any, prompt: Any) -> str:
    """A prompt as the model sees it; a final assistant message (a prefill) is continued, not closed (as TRL does)."""
    if isinstance(prompt, str):
        return prompt
    prefilled = prompt[-1].get("role") == "assistant"
    return tokenizer.apply_chat_template(
        prompt, tokenize=False, add_generation_prompt=not prefilled, continue_final_message=prefilled
    )
