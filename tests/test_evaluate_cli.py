"""The evaluate pipeline through the real CLI: records, reproducibility, multiruns, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from conftest import read_json
from daf_hydra.records import read_run

FAST = ["pipeline=evaluate", "mission=training_facility_1", "mission.max_steps=60", "evaluation.episodes=4", "evaluation.num_envs=2"]


def test_evaluate_writes_the_documented_records(cli, tmp_path):
    out = tmp_path / "run"
    r = cli("pipeline=evaluate", "policy=baseline", *FAST, f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr
    run = read_run(out)
    assert run.status == "completed"
    assert (out / ".hydra" / "config.yaml").is_file()
    assert len(run.episodes) == 4
    assert [e["seed"] for e in run.episodes] == [0, 1, 2, 3]
    first = run.episodes[0]
    assert len(first["rewards"]) == 4 and first["steps"] == 60
    assert abs(first["total_reward"] - sum(first["rewards"])) < 1e-6
    assert "action.move.success" in first["agent_stats"][0] and first["game_stats"]
    assert run.metrics["episodes"] == 4 and run.metrics["mean_reward"] > 0
    prov = run.provenance
    assert prov["seed"] == 0 and prov["device"] == "cpu"
    assert prov["packages"]["mettagrid"] and prov["code"]["git_commit"]
    assert prov["identity"]["policy"] == "baseline" and run.metrics["policy"] == "baseline"
    assert len(prov["config_signature"]) == 12 and prov["config_signature"] == prov["identity"]["signature"]


def _rewards(path: Path) -> list[list[float]]:
    return [e["rewards"] for e in read_run(path).episodes]


def test_same_config_and_seed_give_identical_numbers_in_another_process(cli, tmp_path):
    for policy in ("random", "lstm"):
        runs = []
        for i in range(2):
            out = tmp_path / f"{policy}{i}"
            r = cli(f"policy={policy}", *FAST, "seed=7", f"hydra.run.dir={out}")
            assert r.returncode == 0, r.stderr
            runs.append(_rewards(out))
        assert runs[0] == runs[1], policy
    other = tmp_path / "other_seed"
    assert cli("policy=random", *FAST, "seed=8", f"hydra.run.dir={other}").returncode == 0
    assert _rewards(other) != _rewards(tmp_path / "random0")


def test_multirun_writes_one_run_per_job_and_a_failed_job_does_not_stop_the_others(cli, tmp_path):
    sweep = tmp_path / "sweep"
    r = cli("-m", "pipeline=evaluate", "policy=random,baseline", "mission=training_facility_1,assembler_2",
            "mission.max_steps=40",
            "evaluation.episodes=2", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr
    metrics = [read_json(p) for p in sorted(sweep.glob("*/metrics.json"))]
    assert sorted((m["policy"], m["mission"]) for m in metrics) == sorted(
        (p, m) for p in ("random", "baseline") for m in ("training_facility_1", "assembler_2"))

    failing = tmp_path / "failing"
    r = cli("-m", "pipeline=evaluate", "evaluation.episodes=0,2", "mission.max_steps=40", f"hydra.sweep.dir={failing}")
    assert r.returncode != 0
    by_job = {p.parent.name: read_json(p) for p in failing.glob("*/metrics.json")}
    assert by_job["0"]["status"] == "failed" and "evaluation.episodes=0" in by_job["0"]["error"]
    assert by_job["1"]["status"] == "completed" and by_job["1"]["episodes"] == 2


def _one_line_error(r) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_bad_input_gets_one_clear_line_and_a_nonzero_exit(cli, tmp_path):
    cases = {
        "policy=nope": "baseline",
        "mission=nope": "training_facility_1",
        "evaluation.episodes=0": ">= 1",
        "evaluation.episodes=-3": ">= 1",
        "policy.data_path=missing.pt": "missing.pt",
        "policy.class_path=collections.OrderedDict": "MultiAgentPolicy",
        "policy.class_path=not_a_policy_name": "not_a_policy_name",
        "device=tpu": "cpu",
    }
    for override, expected in cases.items():
        line = _one_line_error(cli(*FAST, override, f"hydra.run.dir={tmp_path / 'bad'}"))
        assert expected in line, (override, line)


def test_hydra_rejects_unknown_keys_and_wrong_types_without_a_traceback(cli, tmp_path):
    for override, expected in {"evaluation.nope=1": "nope", "evaluation.episodes=abc": "abc"}.items():
        r = cli("pipeline=evaluate", override, f"hydra.run.dir={tmp_path / 'bad'}")
        assert r.returncode != 0 and expected in r.stderr and "Traceback" not in r.stderr


def test_corrupt_checkpoint_is_an_error_and_earlier_results_survive(cli, tmp_path):
    good = tmp_path / "good"
    assert cli("policy=baseline", *FAST, f"hydra.run.dir={good}").returncode == 0
    before = (good / "metrics.json").read_text()
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    line = _one_line_error(cli("policy=lstm", f"policy.data_path={corrupt}", *FAST, f"hydra.run.dir={tmp_path / 'x'}"))
    assert "corrupt" in line
    assert json.loads((tmp_path / "x" / "metrics.json").read_text())["status"] == "failed"
    assert (good / "metrics.json").read_text() == before

    wrong = tmp_path / "wrong.pt"
    torch.save({"not": torch.zeros(3)}, wrong)
    assert "does not fit" in _one_line_error(cli("policy=lstm", f"policy.data_path={wrong}", *FAST,
                                                  f"hydra.run.dir={tmp_path / 'y'}"))
