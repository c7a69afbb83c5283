"""What run health is made of: a :class:`Finding`, and the :class:`RunFacts` its rules read (the records of one run
and its settings). The rules are in :mod:`lowvram_r1.runs.health_rules` and :mod:`lowvram_r1.runs.health_resources`;
:mod:`lowvram_r1.runs.health` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from lowvram_r1.runs import read_regular
from lowvram_r1.runs.reader import RunCache, finite

SEVERITIES = ("critical", "warning", "info")  # worst first


@dataclass(frozen=True)
class Finding:
    """One diagnosis. ``evidence``: ``summary`` (one line), ``figures``, ``steps`` [first, last], ``plot`` (the
    live view's plot that shows it) and ``completions`` (a query for the completions to read: step, correct,
    reward_min, order)."""

    id: str
    severity: str
    evidence: dict[str, Any]
    advice: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "evidence": self.evidence, "advice": self.advice}


@dataclass
class RunFacts:
    """What the rules read: the train and eval records, the completion index, and the run's settings."""

    cache: RunCache
    train: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)

    def setting(self, dotted: str, default: Any = None) -> Any:
        """``generation.max_completion_length`` from config.yaml (``default`` when absent or unreadable)."""
        section_name, _, name = dotted.partition(".")
        section = self.settings.get(section_name)
        value = section.get(name) if isinstance(section, dict) else None
        return default if value is None else value

    def series(self, key: str, records: list[dict[str, Any]] | None = None) -> list[tuple[int, float]]:
        """(step, value) of one metric over ``records`` (default: every train record), finite values only."""
        return [
            (int(r["step"]), float(r[key])) for r in (self.train if records is None else records) if finite(r.get(key))
        ]

    def keys(self) -> set[str]:
        """Metric keys of the first and the last train record (TRL's keys do not change within a run)."""
        found: set[str] = set()
        for record in self.train[:1] + self.train[-1:]:
            found.update(record)
        return found


def run_settings(cache: RunCache) -> dict[str, Any]:
    """config.yaml as a nested dict ({} when missing or unreadable: the rules then use defaults)."""
    try:
        loaded = yaml.safe_load(read_regular(cache.run.config))
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
