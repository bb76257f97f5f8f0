"""The HTML reports in a real headless Chromium: they load offline with no JavaScript error, every plot renders,
and hostile names show as text. Needs Debian's chromium (scripts/install-system-deps) and the playwright package.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
EVIL = "<script>alert(1)</script>"
EVIL_IMG = "</script><img src=x onerror=alert(2)>"
FAST = {"bootstrap_reps": 1000, "profile_bootstrap_reps": 200}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    os.environ["TMPDIR"] = str(tmp_path_factory.mktemp("playwright"))  # playwright's own temporary files
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_report(browser, path: Path, screenshot: Path) -> tuple[object, list[str]]:
    """Load a report from file://, wait for its plots, take a full-page screenshot; return page and problems."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: problems.append(f"network: {r.url}") if not r.url.startswith(("file:", "data:"))
            else None)
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    plots = page.locator(".js-plotly-plot")
    assert plots.count() > 0, "no plot in the report"
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')].every(p => p.querySelector('svg.main-svg'))",
        timeout=20_000)
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    return page, problems


def hostile_episodes() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for policy, shift in ((EVIL, 5.0), ("random", 0.0), (EVIL_IMG, 2.0)):
        for mission, scale in (("training_facility_1", 10.0), ("<b>m2</b>", 3.0)):
            for k in range(8):
                total = float(scale + shift + rng.normal(0, 1))
                rows.append({"policy": policy, "mission": mission, "seed": k, "total_reward": total,
                             "success": total > 8, "run_dir": "x"})
    return pd.DataFrame(rows)


def test_comparison_report_renders_and_escapes_names(browser, tmp_path):
    from daf_hydra.comparison_stats import compare_episodes
    from daf_hydra.visualization import daf_export_comparison_html

    results = compare_episodes(hostile_episodes(), FAST, max_reward={"training_facility_1": 20.0})
    results.provenance = {"run_id": EVIL, "config": {"policy": {"name": EVIL}}, "seeds": list(range(8)),
                          "packages": {"plotly": "7"}, "code": {"git_commit": "abc"}}
    path = daf_export_comparison_html(results, tmp_path / "comparison.html")
    page, problems = open_report(browser, path, tmp_path / "comparison.png")
    assert problems == []
    assert page.locator(".js-plotly-plot").count() == 5  # intervals, per mission, distributions, profiles, P(X>Y)
    text = page.inner_text("body")
    assert EVIL in text and EVIL_IMG in text and "<b>m2</b>" in text  # shown as text, not run
    assert page.locator("img").count() == 0 and page.locator("main script").count() == 5  # the plots' own only
    ticks = page.eval_on_selector_all(".js-plotly-plot .ytick text", "els => els.map(e => e.textContent)")
    assert EVIL in ticks  # plotly shows the escaped label as the literal name
    page.close()


def test_tree_report_with_problems_curves_and_a_sweep_renders(browser, tmp_path):
    from daf_hydra.records import RunRecorder
    from daf_hydra.report import write_report

    root = tmp_path / "tree"
    for i, lr in enumerate((0.01, 0.001, 0.0001)):
        rec = RunRecorder(root / "sweep" / str(i), {"run_id": f"t{i}", "kind": "train", "seed": i, "config": {
            "policy": {"name": EVIL}, "mission": {"name": "solo_forage"}, "training": {"lr": lr}, "seed": i}})
        for u in range(10):
            rec.curve({"update": u, "agent_steps": 1000 * (u + 1), "episode_reward": u * (i + 1) / 10.0,
                       "policy_loss": 1.0 / (u + 1)})
        for k in range(4):
            rec.episode({"policy": EVIL, "mission": "solo_forage", "episode": k, "seed": k, "rewards": [1.0 * i],
                         "total_reward": float(i + k), "steps": 200, "max_steps": 200, "success": False})
        rec.complete({"policy": EVIL, "mission": "solo_forage", "objective": float(i)})
    (root / "sweep" / "optimization_results.yaml").write_text("best_params:\n  training.lr: 0.0001\nbest_value: 2.0\n")
    failed = RunRecorder(root / "failed", {"run_id": "f", "kind": "evaluate", "config": {}})
    failed.fail(RuntimeError(EVIL_IMG))
    (root / "corrupt").mkdir()
    (root / "corrupt" / "run.json").write_text("{not json")
    out = write_report(root, statistics=FAST)
    page, problems = open_report(browser, out.report, tmp_path / "tree.png")
    assert problems == []
    for section in ("overview", "provenance", "runs", "summary", "curves", "sweep"):
        assert page.locator(f"section#{section}").count() == 1, section
    text = page.inner_text("body")
    assert EVIL_IMG in text and "corrupt" in text and page.locator("img").count() == 0
    page.close()


def test_mission_analysis_report_renders(browser, tmp_path):
    from daf_hydra.mission_analysis import analyse_episodes
    from daf_hydra.visualization import daf_export_mission_analysis_html

    episodes = [{"episode": k, "seed": k, "rewards": [k / 2, k / 2], "total_reward": float(k), "steps": 100,
                 "max_steps": 100, "success": k >= 6,
                 "agent_stats": [{"status.max_steps_without_motion": 90.0 if k < 3 else 2.0,
                                  "ore_red.gained": float(k)}] * 2} for k in range(8)]
    analysis = analyse_episodes(episodes, EVIL, SimpleNamespace(name="m", success_threshold=6.0), None, FAST)
    analysis.provenance = {"policy": EVIL}
    path = daf_export_mission_analysis_html(analysis, tmp_path / "analysis.html")
    page, problems = open_report(browser, path, tmp_path / "analysis.png")
    assert problems == [] and page.locator(".js-plotly-plot").count() == 3
    assert EVIL in page.inner_text("body")
    page.close()


def test_benchmark_report_replay_player_steps_through_every_frame(browser, tmp_path):
    """A real benchmark (baseline against random: nothing to train) keeps its example replays by default; its
    report's player loads offline, steps through every frame of a short episode, and the cells it shows for
    every agent at every step are the replay file's."""
    import re

    from daf_hydra import replays
    from daf_hydra.orchestrators import daf_run_benchmark_pipeline

    out = tmp_path / "bench"
    result = daf_run_benchmark_pipeline(
        ["baseline"], ["training_facility_1"], 3, False, baselines=["random"], seed=0, device="cpu",
        output_dir=out, overrides=["mission.max_steps=25", f"statistics.bootstrap_reps={FAST['bootstrap_reps']}",
                                   f"statistics.profile_bootstrap_reps={FAST['profile_bootstrap_reps']}"])
    assert result.status == "success", result.errors
    page, problems = open_report(browser, Path(result.outputs["report"]), tmp_path / "bench.png")
    page.wait_for_function("() => document.getElementById('replay-player').dataset.ready === '1'")
    options = page.eval_on_selector_all("#replay-episode option", "els => els.map(e => e.textContent)")
    assert len(options) == 6  # baseline and random: lowest, median, highest each
    assert {o.split(":")[0] for o in options} == {"baseline on training_facility_1", "random on training_facility_1"}
    seed = int(re.search(r"seed (\d+)", options[0]).group(1))
    policy = options[0].split(" on ")[0]
    (member,) = [d for d in (out / "evaluation").rglob("replays") if f"p{0 if policy == 'baseline' else 1}-" in str(d)]
    replay = replays.load(member / "training_facility_1" / f"seed_{seed}.json.z")
    assert replay["max_steps"] == 25
    for step in range(25):
        if step:
            page.click("#replay-next")
        assert page.get_attribute("#replay-player", "data-step") == str(step)
        shown = page.eval_on_selector_all(
            "#replay-grid circle.agent", "els => els.map(e => [+e.dataset.agent, +e.dataset.x, +e.dataset.y])")
        assert {a: (x, y) for a, x, y in shown} == replays.agent_cells(replay, step), step
    page.click("#replay-next")  # the last frame stays the last
    assert page.get_attribute("#replay-player", "data-step") == "24"
    page.click("#replay-play")  # plays from the start again, then pauses on request
    page.wait_for_function("() => +document.getElementById('replay-player').dataset.step > 3")
    page.click("#replay-play")
    assert page.inner_text("#replay-play") == "play"
    assert page.locator("#replay-step-reward").count() == 1
    assert problems == []
    page.close()
