"""Reward pieces shared by tasks. Every function has TRL's signature and imports without torch or trl."""

from lowvram_r1.rewards.format import soft_format_reward, strict_format_reward, tag_count_reward
from lowvram_r1.rewards.monitor import reflection_reward
from lowvram_r1.rewards.parsing import completion_text, extract_answer

__all__ = [
    "completion_text",
    "extract_answer",
    "reflection_reward",
    "soft_format_reward",
    "strict_format_reward",
    "tag_count_reward",
]
