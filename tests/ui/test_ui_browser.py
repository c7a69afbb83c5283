"""End to end in a real browser: Playwright drives Debian's Chromium against the panel served on localhost.

Launch a tiny-model run from the form, watch completions appear and the reward plot redraw, stop it from the Runs
tab, and check that the run directory says stopped. Screenshots land in tests/artifacts/ (look at them).
Needs ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it) and the ``playwright`` Python
package (the ``ui-test`` extra); it never downloads a browser.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lowvram_r1.runs import RunDir
from tests.paths import TESTS

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = TESTS / "artifacts"
# Headless, no sandbox (CI runs as root), and nothing that reaches for the network (closed here).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
RECIPE = {
    "model": {"name": "tiny"},
    "task": {
        "name": "countdown",
        "system_prompt": "",
        "eval_size": 8,
        "options": {
            "min_numbers": 3,
            "max_numbers": 3,
            "max_number": 9,
            "max_target": 100,
            "question_style": "compact",
            "train_size": 500,
            "test_size": 8,
        },
    },
    "training": {
        "max_steps": 300,
        "learning_rate": 0.005,
        "per_device_train_batch_size": 8,
        "num_generations": 4,
        "save_steps": 2,
    },
    "generation": {"max_prompt_length": 64, "max_completion_length": 40},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does) to run the browser test")
    pytest.importorskip("playwright", reason="the playwright package is missing: pip install -e '.[ui-test]'")
    pytest.importorskip("gradio", reason="gradio is missing: pip install -e '.[ui]'")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "e2e.yaml").write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    port = _free_port()
    log = open(tmp_path / "panel.log", "wb")  # closed in the finally below
    panel = subprocess.Popen(
        [sys.executable, "-m", "lowvram_r1.cli", "ui", "--port", str(port), "--configs-dir", "configs"],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert panel.poll() is None, (tmp_path / "panel.log").read_text()
            time.sleep(0.5)
    try:
        yield url, tmp_path
    finally:
        panel.terminate()
        panel.wait(timeout=30)
        log.close()
        for run in (tmp_path / "runs").glob("*"):  # a trainer outlives the panel by design: end the ones we started
            pid = RunDir(run).status().get("pid")
            if pid and RunDir(run).status().get("state") == "running":
                os.killpg(pid, signal.SIGKILL)


# Far more steps than any machine trains before the test clicks Stop (and the fixture ends what it started): the
# verdict must not depend on how fast this machine trains (a 60-step run finished first on a fast one).
MAX_STEPS = 100_000


def test_launch_watch_and_stop_a_tiny_run_in_the_browser(served: tuple[str, Path], small_model: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, root = served
    run = RunDir(root / "runs" / "e2e-tiny")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        command = page.locator("#command")
        expect(command).to_contain_text("configs/e2e.yaml", timeout=30_000)

        # the form: a model folder typed in, a run name, a knob; the command follows the form
        model = page.locator("#model input")
        model.fill(str(small_model))
        model.press("Enter")
        page.locator("#max-steps input").fill(str(MAX_STEPS))
        page.locator("#run-name").get_by_role("textbox").fill("e2e-tiny")
        page.locator("#run-name").get_by_role("textbox").press("Tab")
        expect(command).to_contain_text(f"--model={small_model}", timeout=15_000)
        expect(command).to_contain_text(f"--max-steps={MAX_STEPS}", timeout=15_000)  # a busy machine previews late
        page.locator("#start").click()
        expect(page.locator("#launch-message")).to_contain_text("Started e2e-tiny", timeout=15_000)

        # the Live tab follows the new run: completions appear, the reward plot redraws as steps arrive
        expect(page.locator("#live-status")).to_contain_text("e2e-tiny", timeout=30_000)
        expect(page.locator("#cards .lr-card").first).to_be_visible(timeout=300_000)
        expect(page.locator("#cards .lr-answer, #cards .lr-rest").first).to_be_visible()
        reward_plot = page.locator("#plot-reward")
        expect(reward_plot.locator("canvas, svg").first).to_be_visible(timeout=30_000)
        before = reward_plot.screenshot()
        step_before = _latest_step(run)
        deadline = time.monotonic() + 240
        while _latest_step(run) < step_before + 2 and time.monotonic() < deadline:
            time.sleep(1)
        assert _latest_step(run) >= step_before + 2, "training stalled"
        page.wait_for_timeout(3 * 2000)  # a few refresh ticks
        assert reward_plot.screenshot() != before, "the reward plot did not redraw with new steps"
        expect(reward_plot).to_contain_text("total")  # the legend lists the drawn series
        accuracy_plot = page.locator("#plot-accuracy")
        expect(accuracy_plot).to_contain_text("training batch")  # legend: both series, though held-out came first
        expect(accuracy_plot).to_contain_text("held-out")
        expect(page.locator("#plot-kl")).to_contain_text("beta > 0")  # beta 0: KL is empty, and says why
        page.screenshot(path=str(ARTIFACTS / "panel-live.png"), full_page=True)

        # stop from the Runs tab: graceful (checkpoint, then state "stopped")
        page.get_by_role("tab", name="Runs").click()
        expect(page.locator("#runs-table")).to_contain_text("e2e-tiny", timeout=15_000)
        expect(page.locator("#selected-run input")).to_have_value("e2e-tiny", timeout=15_000)
        page.locator("#stop").click()
        expect(page.locator("#runs-message")).to_contain_text("stop requested", timeout=15_000)
        deadline = time.monotonic() + 240
        while run.status().get("state") == "running" and time.monotonic() < deadline:
            time.sleep(1)
        status = run.status()
        assert status.get("state") == "stopped", status
        assert status["step"] < MAX_STEPS and run.last_checkpoint() is not None
        expect(page.locator("#runs-table")).to_contain_text("stopped", timeout=15_000)
        page.screenshot(path=str(ARTIFACTS / "panel-runs.png"), full_page=True)

        # try it: the stopped run's adapter answers a held-out problem (inference in a child process)
        page.get_by_role("tab", name="Try it").click()
        try_run = page.locator("#try-run input")
        try_run.click()
        page.get_by_role("option", name="e2e-tiny").click()
        page.locator("#ask").click()
        expect(page.locator("#answer .lr-card")).to_be_visible(timeout=300_000)
        expect(page.locator("#answer")).to_contain_text("Use [")  # the task's prompt, as the run trained on it
        page.screenshot(path=str(ARTIFACTS / "panel-try.png"), full_page=True)
        browser.close()


def _latest_step(run: RunDir) -> int:
    return int(run.status().get("step") or 0)


def test_a_truncated_run_shows_its_health_card_and_links_to_the_cut_completions(
    served: tuple[str, Path], small_model: Path
) -> None:
    """A real tiny run whose completions are cut at 8 tokens: the Live tab's Health card says truncated, and its
    link shows the step's longest cut completions."""
    from playwright.sync_api import expect, sync_playwright

    from lowvram_r1.runs.health import diagnose
    from lowvram_r1.runs.reader import RunCache
    from lowvram_r1.train import engine
    from tests.train.test_train import small_config

    url, root = served
    run = root / "runs" / "cut-at-8"
    engine.train(small_config(small_model, run, max_steps=3, max_completion_length=8, eval_size=0), progress=False)
    cache = RunCache(run)
    cache.refresh()
    worst_step = next(f for f in diagnose(cache) if f.id == "truncated").evidence["completions"]["step"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_role("tab", name="Live").click()
        health = page.locator("#health")
        expect(health).to_contain_text("truncated", timeout=30_000)
        expect(health).to_contain_text("critical")
        expect(health).to_contain_text("--max-completion-length (now 8; try 16)")
        health.locator('[data-finding="truncated"]').click()
        expect(page.locator("#filter-step input, #filter-step textarea").first).to_have_value(
            str(worst_step), timeout=15_000
        )
        expect(page.locator("#order input[value='longest first']")).to_be_checked(timeout=15_000)
        expect(page.locator("#cards .lr-card").first).to_be_visible(timeout=15_000)
        page.screenshot(path=str(ARTIFACTS / "panel-health.png"), full_page=True)
        # no_signal's link: the step's completions grouped by prompt, each with its reward and advantage
        health.locator('[data-finding="no_signal"]').click()
        expect(page.locator("#order input[value='grouped by prompt']")).to_be_checked(timeout=15_000)
        expect(page.locator("#cards .lr-group").first).to_contain_text("no spread", timeout=15_000)
        page.locator("#cards").screenshot(path=str(ARTIFACTS / "panel-health-groups.png"))
        browser.close()
