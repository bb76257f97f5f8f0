"""The train pipeline, for real: short PPO trainings through the CLI and the Python API.

Small settings keep each training to seconds: 8 environments x 4 agents x bptt 8 = a batch of 256 agent steps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from conftest import read_json, run_cli
from daf_hydra.config import DAFTrainingConfig
from daf_hydra.errors import DAFError
from daf_hydra.orchestrators.train import STAGES
from daf_hydra.records import read_jsonl, read_run

SMALL = ["training.num_envs=8", "training.bptt_horizon=8", "training.minibatch_size=128", "training.update_epochs=2",
         "evaluation.episodes=2", "evaluation.num_envs=2"]
BATCH = 8 * 4 * 8
TIMING = ("sps", "wall_time_s")


def _digest(path: Path) -> str:
    from daf_hydra.training import weights_digest

    return weights_digest(torch.load(path, weights_only=True))


def _updates(run_dir: Path) -> list[int]:
    return [r["update"] for r in read_jsonl(run_dir / "curve.jsonl")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One real training on two rotated missions, shared by the record and checkpoint tests."""
    cwd = tmp_path_factory.mktemp("trained")
    out = cwd / "run"
    r = run_cli("pipeline=train", "policy=lstm", "policy.kwargs.hidden_size=32", *SMALL,
                "training.missions=[training_facility_1,training_facility_2]", f"training.total_steps={60 * BATCH}",
                "training.checkpoint_interval=25", f"hydra.run.dir={out}", cwd=cwd, timeout=300)
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow
def test_training_writes_curve_checkpoints_evaluation_and_pipeline_records(trained):
    run = read_run(trained)
    m = run.metrics
    assert m["status"] == "completed" and m["trained"] is True
    assert [r["update"] for r in run.curve] == list(range(1, 61))
    assert [r["agent_steps"] for r in run.curve] == [BATCH * u for u in range(1, 61)]
    for key in ("sps", "episode_reward", "policy_loss", "value_loss", "entropy", "learning_rate", "approx_kl"):
        assert key in run.curve[-1], key
    assert run.curve[0]["learning_rate"] == pytest.approx(0.001) and run.curve[-1]["learning_rate"] < 0.0001
    by_mission = [r["episode_reward_by_mission"] for r in run.curve if r.get("episode_reward_by_mission")]
    assert {"training_facility_1", "training_facility_2"} <= {k for d in by_mission for k in d}
    bundles = sorted(p.name for p in (trained / "checkpoints").iterdir())
    assert bundles == ["update_000025", "update_000050", "update_000060"]
    assert m["final_checkpoint"] == str(trained / "checkpoints" / "update_000060")
    assert m["training"]["agent_steps"] == 60 * BATCH
    assert set(m["evaluation"]) == {"training_facility_1", "training_facility_2"}
    assert {e["mission"] for e in run.episodes} == {"training_facility_1", "training_facility_2"}
    assert len(run.episodes) == 4
    assert m["mission"] == "training_facility_1+training_facility_2"
    assert m["mean_reward"] == pytest.approx(sum(s["mean_reward"] for s in m["evaluation"].values()) / 2)
    pipeline = read_json(trained / "pipeline.json")
    assert pipeline["status"] == "success"
    assert pipeline["stages_completed"] == list(STAGES) == ["environment_check", "training", "checkpoint", "evaluation"]
    assert pipeline["outputs"]["final_checkpoint"] == m["final_checkpoint"]


@pytest.mark.slow
def test_checkpoint_bundle_loads_through_mettagrid_in_a_fresh_process_and_as_policy_data_path(trained, tmp_path):
    bundle = trained / "checkpoints" / "update_000060"
    spec = read_json(bundle / "policy_spec.json")
    assert spec["data_path"] == "weights.pt" and spec["init_kwargs"]["hidden_size"] == 32
    assert "extractor_red" in " ".join(spec["init_kwargs"]["tag_names"])
    script = textwrap.dedent(f"""
        from pathlib import Path
        from mettagrid.policy.loader import initialize_or_load_policy
        from mettagrid.policy.prepare_policy_spec import load_policy_spec_from_path
        from daf_hydra.training import weights_digest
        spec = load_policy_spec_from_path(Path({str(bundle)!r}))
        policy = initialize_or_load_policy(spec.policy_env_interface, spec)
        print("DIGEST", weights_digest(policy.network()), policy.network().hidden_size)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    digest, hidden = r.stdout.split("DIGEST ")[1].split()
    assert digest == _digest(bundle / "weights.pt") and hidden == "32"
    out = tmp_path / "eval"
    r = run_cli("pipeline=evaluate", "policy=lstm", f"policy.data_path={bundle}", "evaluation.episodes=2",
                f"hydra.run.dir={out}", cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert read_run(out).metrics["status"] == "completed"


@pytest.mark.slow
def test_lr_multirun_trains_with_really_different_learning_rates(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli("pipeline=train", "policy=lstm", "-m", "lr=1e-4,1e-2", *SMALL, f"training.total_steps={6 * BATCH}",
                "training.anneal_lr=false", f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    runs = sorted(sweep.glob("[0-9]*"), key=lambda p: int(p.name))
    assert len(runs) == 2
    curves = [read_jsonl(p / "curve.jsonl") for p in runs]
    assert [{c["learning_rate"] for c in curve} for curve in curves] == [{1e-4}, {1e-2}]
    losses = [[(c["policy_loss"], c["value_loss"], c["entropy"]) for c in curve] for curve in curves]
    assert all(a != b for a, b in zip(losses[0][1:], losses[1][1:]))  # same seed: only the rate differs
    digests = [_digest(Path(read_json(p / "metrics.json")["final_checkpoint"]) / "weights.pt") for p in runs]
    assert digests[0] != digests[1]
    configs = [read_json(p / "run.json")["config"]["training"]["learning_rate"] for p in runs]
    assert configs == [1e-4, 1e-2]


@pytest.mark.slow
def test_same_seed_same_curve_and_weights_through_the_python_api(tmp_path):
    from daf_hydra.orchestrators import daf_run_training_pipeline

    def run(name: str, seed: int):
        result = daf_run_training_pipeline(config=DAFTrainingConfig(
            policy_class_path="mlp", missions=["training_facility_1"], num_training_steps=12 * BATCH,
            eval_episodes=2, seed=seed, output_dir=str(tmp_path / name), overrides=SMALL[:4]))
        assert result.is_success(), result.errors
        curve = [{k: v for k, v in r.items() if k not in TIMING} for r in read_jsonl(tmp_path / name / "curve.jsonl")]
        return result.outputs["training"]["weights_digest"], curve, result

    a, curve_a, result = run("a", 3)
    b, curve_b, _ = run("b", 3)
    c, curve_c, _ = run("c", 4)
    assert a == b and curve_a == curve_b
    assert a != c and curve_a != curve_c
    assert result.stages_completed == list(STAGES)
    assert Path(result.outputs["final_checkpoint"]).is_dir()
    assert result.outputs["mean_reward"] == result.outputs["evaluation"]["training_facility_1"]["mean_reward"]
    assert read_json(tmp_path / "a" / "pipeline.json")["status"] == "success"


def _wait_for(predicate, proc: subprocess.Popen, timeout: float) -> None:
    end = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < end, "timed out"
        time.sleep(0.05)


def _popen(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen([sys.executable, "-m", "daf_hydra.run", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _workers_of(proc: subprocess.Popen) -> list:
    import psutil

    return psutil.Process(proc.pid).children(recursive=True)


@pytest.mark.slow
def test_resume_after_kill_9_continues_from_the_last_checkpoint(tmp_path):
    """The learner alone is killed (as the OOM killer would): its environment workers die with it, and a resumed
    run continues from the last checkpoint."""
    import psutil

    out = tmp_path / "run"
    args = ["pipeline=train", "policy=mlp", "policy.kwargs.hidden_size=16", *SMALL, "training.vec_workers=2",
            "training.checkpoint_interval=3", f"hydra.run.dir={out}"]
    proc = _popen([*args, f"training.total_steps={1000 * BATCH}"], tmp_path)
    try:
        _wait_for(lambda: (out / "checkpoints" / "update_000003").is_dir(), proc, 120)
        workers = _workers_of(proc)
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive  # no orphaned worker keeps stepping environments
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    last = max(int(p.name.split("_")[1]) for p in (out / "checkpoints").glob("update_*"))
    assert not (out / "metrics.json").exists()  # it really died
    killed_curve = _updates(out)
    r = run_cli(*args, f"training.total_steps={(last + 4) * BATCH}", "training.resume=true", cwd=tmp_path,
                timeout=300)
    assert r.returncode == 0, r.stderr
    m = read_json(out / "metrics.json")
    assert m["status"] == "completed"
    assert m["training"]["resumed_from"] == str(out / "checkpoints" / f"update_{last:06d}")
    assert m["training"]["agent_steps"] == (last + 4) * BATCH and m["training"]["updates"] == last + 4
    assert _updates(out) == list(range(1, last + 5))  # each update once: nothing after the checkpoint kept twice
    assert killed_curve[: last] == list(range(1, last + 1))


@pytest.mark.slow
def test_ctrl_c_writes_a_checkpoint_and_stops_cleanly(tmp_path):
    out = tmp_path / "run"
    proc = _popen(["pipeline=train", "policy=mlp", "policy.kwargs.hidden_size=16", *SMALL,
                   f"training.total_steps={1000 * BATCH}",
                   "training.checkpoint_interval=1000", f"hydra.run.dir={out}"], tmp_path)
    try:
        _wait_for(lambda: len(_updates(out)) >= 3, proc, 120)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "training.resume=true" in stderr and "Traceback" not in stderr
    last = _updates(out)[-1]
    assert (out / "checkpoints" / f"update_{last:06d}" / "weights.pt").is_file()
    m = read_json(out / "metrics.json")
    assert m["status"] == "failed" and "interrupted" in m["error"]
    assert m["final_checkpoint"] == str(out / "checkpoints" / f"update_{last:06d}")


@pytest.mark.slow
def test_a_crashed_environment_worker_fails_the_run_in_one_line(tmp_path):
    out = tmp_path / "run"
    proc = _popen(["pipeline=train", "policy=mlp", "policy.kwargs.hidden_size=16", *SMALL, "training.vec_workers=2",
                   f"training.total_steps={1000 * BATCH}", f"hydra.run.dir={out}"], tmp_path)
    try:
        _wait_for(lambda: len(_updates(out)) >= 2, proc, 120)
        victim = _workers_of(proc)[1]
        victim.kill()
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if "environment worker" in line]
    assert len(lines) == 1 and f"(pid {victim.pid}) died (killed by SIGKILL" in lines[0], stderr
    m = read_json(out / "metrics.json")
    assert m["status"] == "failed" and f"(pid {victim.pid}) died" in m["error"]
    assert "mean_reward" not in m or m["mean_reward"] is None  # no made-up score


@pytest.mark.slow
def test_training_with_environment_workers_learns(tmp_path):
    """Two worker processes step the environments: the policy still learns (its episodes' reward rises)."""
    out = tmp_path / "run"
    r = run_cli("pipeline=train", "policy=mlp", "training.vec_workers=2", "training.total_steps=200000",
                "evaluation.episodes=2", f"hydra.run.dir={out}", cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr
    rewards = [rec["episode_reward"] for rec in read_jsonl(out / "curve.jsonl") if rec["episode_reward"] is not None]
    first, last = rewards[:2], rewards[-2:]
    print(f"episode reward, first updates {first}, last {last}")
    assert len(rewards) >= 4 and sum(last) / len(last) > 1.5 * sum(first) / len(first)


FAILING_POLICY = '''
from daf_hydra.policies.networks import TokenMLPPolicy


class FailingPolicy(TokenMLPPolicy):
    """Rolls out fine, then its first PPO update raises."""

    def network(self):
        net = super().network()

        def forward(*args, **kwargs):
            raise RuntimeError("injected training failure")

        net.forward = forward
        return net
'''


@pytest.mark.slow
def test_a_training_error_fails_the_run_with_the_error_recorded_and_no_hang(tmp_path):
    (tmp_path / "failing_policy.py").write_text(FAILING_POLICY)
    out = tmp_path / "run"
    r = run_cli("pipeline=train", "policy=mlp", "policy.class_path=failing_policy.FailingPolicy", *SMALL,
                f"training.total_steps={4 * BATCH}", f"hydra.run.dir={out}", cwd=tmp_path, timeout=120)
    assert r.returncode != 0
    assert "injected training failure" in r.stderr
    m = read_json(out / "metrics.json")
    assert m["status"] == "failed" and "injected training failure" in m["error"]
    pipeline = read_json(out / "pipeline.json")
    assert pipeline["status"] == "failed" and pipeline["stages_failed"] == ["training"]
    assert pipeline["stages_completed"] == ["environment_check"]


def test_invalid_training_values_are_rejected_before_any_work(cli, tmp_path):
    for override, named in [("lr=0", "training.learning_rate=0.0"),
                            ("training.minibatch_size=100", "minibatch_size=100"),
                            ("training.gamma=1.5", "training.gamma=1.5")]:
        out = tmp_path / override.replace("=", "_")
        r = cli("pipeline=train", "policy=mlp", override, f"hydra.run.dir={out}")
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and named in lines[-1], r.stderr
        assert not (out / "checkpoints").exists() and not (out / "curve.jsonl").exists()
        assert not (out / "metrics.json").exists()  # refused before any run started: nothing looks like a result
    with pytest.raises(DAFError, match="num_training_steps=0"):
        DAFTrainingConfig(num_training_steps=0).validate()
    from daf_hydra.orchestrators import daf_run_training_pipeline

    with pytest.raises(DAFError, match="minibatch_size"):
        daf_run_training_pipeline(output_dir=str(tmp_path / "api"), overrides=["training.minibatch_size=100"])


def test_a_policy_with_nothing_to_train_is_evaluated_only_and_says_so(cli, tmp_path):
    out = tmp_path / "run"
    r = cli("pipeline=train", "policy=random", "evaluation.episodes=2", "mission.max_steps=50", f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr
    assert "nothing to train" in r.stdout
    m = read_json(out / "metrics.json")
    assert m["status"] == "completed" and m["trained"] is False and "final_checkpoint" not in m
    assert len(read_jsonl(out / "episodes.jsonl")) == 2 and not (out / "curve.jsonl").exists()
    assert read_json(out / "pipeline.json")["stages_completed"] == ["environment_check", "evaluation"]
