"""Run identity: every record, table and report names what actually ran (daf_hydra.identity).

The headline command of the design card (`policy=lstm -m lr=1e-4,1e-3`) is run for real, with a tiny training
budget, and its multirun report must show two arms, each named by what differs; a policy given by class path is
recorded under its class; trained arms with replicates are compared over runs, on the same evaluation seeds."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import ROOT, read_json, run_cli
from daf_hydra.identity import label_arms, policy_name, run_identity
from daf_hydra.records import read_run

TINY_TRAINING = ("training.total_steps=1024", "training.num_envs=8", "training.minibatch_size=512",
                 "evaluation.episodes=3", "mission.max_steps=40")


def config(**over) -> dict:
    base = {"pipeline": {"name": "train"}, "seed": 0, "lr": 0.001, "output_dir": "/somewhere",
            "policy": {"name": None, "class_path": "lstm", "data_path": None, "kwargs": {"hidden_size": 64}},
            "mission": {"name": "training_facility_1", "max_steps": 300, "width": 13},
            "evaluation": {"episodes": 10, "num_envs": 8, "seed": None, "progress": None},
            "training": {"learning_rate": 0.001, "total_steps": 1000, "seed": 0, "device": "cpu"}}
    for key, value in over.items():
        node = base
        *path, last = key.split("__")
        for part in path:
            node = node[part]
        node[last] = value
    return base


def test_arm_leaves_out_seed_paths_and_device_and_names_lr_once():
    a, b = run_identity(config(seed=0)), run_identity(config(seed=1, output_dir="/elsewhere", training__seed=1))
    assert a.arm == b.arm and a.arm_id == b.arm_id and a.signature != b.signature
    assert a.replicate == 0 and b.replicate == 1
    assert "lr" in a.arm and "training.learning_rate" not in a.arm and "training.seed" not in a.arm
    assert not any(k.startswith(("output_dir", "training.device", "evaluation.num_envs")) for k in a.arm)
    # an evaluate run does not depend on training settings: they are not part of its arm
    ev = run_identity(config(pipeline__name="evaluate", training__learning_rate=0.5))
    assert not any(k == "lr" or k.startswith("training.") for k in ev.arm)


def test_labels_name_what_differs_and_treat_the_mission_as_its_own_column():
    runs = [config(training__learning_rate=lr, mission__name=m, mission__width=w, seed=s)
            for lr in (1e-4, 1e-3) for m, w in (("a", 13), ("b", 17)) for s in (0, 1)]
    labels = label_arms([run_identity(c) for c in runs])
    assert set(labels) == {"lstm lr=0.0001", "lstm lr=0.001"}  # width differs by mission only
    override = [config(mission__max_steps=50), config(mission__max_steps=300)]
    assert label_arms([run_identity(c) for c in override]) == ["lstm mission.max_steps=50",
                                                               "lstm mission.max_steps=300"]


def test_policy_name_comes_from_what_is_instantiated():
    assert policy_name({"class_path": "my_pkg.MyPolicy"}) == "my_pkg.MyPolicy"
    assert policy_name({"class_path": "lstm", "data_path": "/x/run/checkpoints/final"}) == \
        "lstm:checkpoints/final"
    assert policy_name({"class_path": "/x/deployment/lstm/"}) == "lstm"
    assert policy_name({"name": "mine", "class_path": "baseline"}) == "mine"


def test_class_path_policy_is_recorded_under_its_class(tmp_path):
    r = run_cli("pipeline=evaluate", "policy.class_path=policies_for_tests.AlwaysEast", "evaluation.episodes=2",
                "mission.max_steps=30", "hydra.run.dir=run", cwd=tmp_path,
                env={"PYTHONPATH": str(ROOT / "tests")})
    assert r.returncode == 0, r.stderr
    run = read_run(tmp_path / "run")
    assert run.metrics["policy"] == "policies_for_tests.AlwaysEast"
    assert {e["policy"] for e in run.episodes} == {"policies_for_tests.AlwaysEast"}
    assert run.provenance["identity"]["policy"] == "policies_for_tests.AlwaysEast"
    assert "baseline" not in r.stdout
    from daf_hydra.aggregate import daf_aggregate_runs

    tables = daf_aggregate_runs(tmp_path / "run")
    assert tables.runs["policy"].tolist() == ["policies_for_tests.AlwaysEast"]
    assert set(tables.episodes["policy"]) == {"policies_for_tests.AlwaysEast"}


@pytest.mark.slow
def test_headline_multirun_report_has_two_arms_and_no_duplicates(tmp_path):
    r = run_cli("policy=lstm", "-m", "lr=1e-4,1e-3", *TINY_TRAINING, "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    comparison = read_json(tmp_path / "sweep" / "aggregate" / "comparison" / "comparison.json")
    assert comparison["policies"] == ["lstm lr=0.0001", "lstm lr=0.001"]
    assert comparison["completeness"]["complete"] and not comparison["completeness"]["duplicates"]
    assert comparison["settings"]["unit"] == "episode"
    assert all("one training run" in n for n in comparison["settings"]["notes"]) and \
        len(comparison["settings"]["notes"]) == 2
    html = (tmp_path / "sweep" / "aggregate" / "report.html").read_text()
    assert "Duplicate episodes" not in html and "duplicates not used" not in html
    assert html.count("Objective vs lr") == 1 and "Objective vs training.learning_rate" not in html
    assert '"type":"log"' in html  # the lr axis
    curves = pd.read_csv(tmp_path / "sweep" / "aggregate" / "curves.csv")
    assert set(curves["arm"]) == {"lstm lr=0.0001", "lstm lr=0.001"}


@pytest.mark.slow
def test_replicates_make_the_training_run_the_unit_on_shared_evaluation_seeds(tmp_path):
    r = run_cli("policy=lstm", "-m", "lr=1e-4,1e-3", "seed=0,1", *TINY_TRAINING, "hydra.sweep.dir=sweep",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    for job in range(4):  # evaluation seeds do not move with the training seed: every arm meets the same maps
        assert [e["seed"] for e in read_run(tmp_path / "sweep" / str(job)).episodes] == [0, 1, 2]
    comparison = read_json(tmp_path / "sweep" / "aggregate" / "comparison" / "comparison.json")
    assert comparison["settings"]["unit"] == "run" and comparison["completeness"]["complete"]
    summary = pd.DataFrame(comparison["summary_statistics"])
    assert set(summary["policy"]) == {"lstm lr=0.0001", "lstm lr=0.001"}
    assert set(summary["n_episodes"]) == {2} and set(summary["unit"]) == {"run"}  # two runs per arm
    tests = pd.DataFrame(comparison["pairwise_significance_tests"])
    assert set(tests["test"]) <= {"welch_t", "mann_whitney_u"}  # runs are independent: no paired test
    assert "4 of 4 runs analysed" in comparison["completeness"]["summary"]
