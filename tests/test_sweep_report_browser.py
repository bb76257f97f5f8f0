"""The sweep report (Optuna's figures, validations with pruned trials marked, the best trial's learning curve) in
a real headless Chromium: a real Optuna study in SQLite with reported validations and a pruned trial."""

from __future__ import annotations

import optuna
import pytest

from test_report_browser import browser, open_report  # noqa: F401  (the module's Chromium fixture)

from daf_hydra.records import RunRecorder
from daf_hydra.sweeps import TrialRecord, write_sweep_report

pytestmark = pytest.mark.browser


def test_the_sweep_report_shows_validations_pruned_trials_and_the_best_curve(browser, tmp_path):  # noqa: F811
    study = optuna.create_study(study_name="report", storage=f"sqlite:///{tmp_path / 'study.db'}",
                                direction="maximize")
    records = []
    for number, lr in enumerate((1e-4, 1e-3, 1e-2, 3e-2)):
        study.enqueue_trial({"lr": lr})
        trial = study.ask()
        trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        run = tmp_path / str(number)
        rec = RunRecorder(run, {"run_id": f"r{number}", "kind": "train", "config": {}})
        steps = 3 if number != 3 else 1
        for step in range(1, steps + 1):
            value = (number + 1) * step
            trial.report(value, step)
            rec.curve({"update": step, "agent_steps": 1000 * step, "episode_reward": value / 2})
            rec.validation({"validation": step, "agent_steps": 1000 * step, "metric": "mean_reward", "value": value})
        if number == 3:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, float((number + 1) * steps))
        records.append(TrialRecord(number, study.trials[number].state.name, None, {}, None, run_dir=str(run)))
    path = tmp_path / "sweep_report.html"
    write_sweep_report(path, study, records)
    page, problems = open_report(browser, path, tmp_path / "sweep.png")
    assert problems == []
    text = page.inner_text("body")
    assert "4 trials: 3 complete, 1 PRUNED, 0 failed" in text
    assert "Trial3 (PRUNED)" in text  # the pruned trial's validations, named so in the legend
    assert "Best trial (2): learning curve" in text
    page.close()
