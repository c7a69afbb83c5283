"""Run health: why the reward is flat and what to change, read from the run directory alone.

    cache = RunCache(Path("runs/NAME")); cache.refresh()
    for finding in diagnose(cache):          # worst first; empty on a healthy run
        print(finding.severity, finding.id, finding.evidence["summary"], finding.advice)

Each :class:`Finding` has an id, a severity (critical, warning, info), its evidence (the figures, the steps they
cover, the plot that shows it and the completions to look at) and one sentence of advice naming the flag to change.
The findings are computed from what the recorder wrote (metrics.jsonl, completions.jsonl through the cache's small
per-record index, config.yaml) and written nowhere: the CLI (`lowvram-r1 health`), the panel and the notebook
compute them on the records they already read, so a refresh costs what the new records cost (:class:`RunHealth`
recomputes only when the cache's version moved). The rules and their thresholds live in
:mod:`lowvram_r1.runs.health_rules`; docs/health.md explains each finding.
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
        section, _, name = dotted.partition(".")
        value = (self.settings.get(section) or {}).get(name) if isinstance(self.settings.get(section), dict) else None
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


def diagnose(cache: RunCache, settings: dict[str, Any] | None = None) -> list[Finding]:
    """Every finding of the run the (refreshed) cache holds, worst first."""
    from lowvram_r1.runs.health_resources import RULES

    train, evals = cache.split_metrics()
    facts = RunFacts(cache, train, evals, run_settings(cache) if settings is None else settings)
    findings = [finding for rule in RULES if (finding := rule(facts)) is not None]
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity))


class RunHealth:
    """The findings of one run, recomputed only when its cache read new records (the panel calls it each tick)."""

    def __init__(self, cache: RunCache) -> None:
        self.cache = cache
        self._version = -1
        self._settings: dict[str, Any] | None = None
        self._findings: list[Finding] = []

    def findings(self) -> list[Finding]:
        if self._version != self.cache.version:
            if not self._settings:  # config.yaml is written when the trainer starts
                self._settings = run_settings(self.cache)
            self._findings = diagnose(self.cache, self._settings)
            self._version = self.cache.version
        return self._findings
