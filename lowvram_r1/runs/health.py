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

from typing import Any

from lowvram_r1.runs.findings import SEVERITIES, Finding, RunFacts, run_settings
from lowvram_r1.runs.health_resources import RULES
from lowvram_r1.runs.reader import RunCache

__all__ = ["Finding", "RunHealth", "diagnose"]


def diagnose(cache: RunCache, settings: dict[str, Any] | None = None) -> list[Finding]:
    """Every finding of the run the (refreshed) cache holds, worst first."""
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
