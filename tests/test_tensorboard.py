"""training.tensorboard=true: a real Hydra multirun of two real trainings writes TensorBoard events next to each
run's curve.jsonl, under the run's label, and TensorBoard's own reader gives back the curve's numbers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from daf_hydra.errors import DAFError
from daf_hydra.records import read_jsonl

pytestmark = pytest.mark.slow


def test_a_multiruns_trainings_write_their_curves_as_events_under_their_labels(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sweep = tmp_path / "multirun"
    r = subprocess.run([sys.executable, "-m", "daf_hydra.run", "-m", "pipeline=train", "policy=mlp",
                        "training.total_steps=8000", "training.tensorboard=true", "evaluation.episodes=1",
                        "mission.max_steps=50", "lr=1e-3,3e-3", f"hydra.sweep.dir={sweep}"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    for job, lr in (("0", "0.001"), ("1", "0.003")):
        (events_dir,) = (sweep / job / "tensorboard").iterdir()  # one run per training, named by its label
        assert events_dir.name.startswith("mlp ") and f"lr={lr}" in events_dir.name.split()
        acc = EventAccumulator(str(events_dir))
        acc.Reload()
        tags = set(acc.Tags()["scalars"])
        assert {"sps", "learning_rate", "entropy", "policy_loss", "value_loss"} <= tags
        curve = read_jsonl(sweep / job / "curve.jsonl")
        assert len(curve) >= 2
        for tag in ("learning_rate", "entropy", "sps", "value_loss"):
            scalars = acc.Scalars(tag)
            assert [s.step for s in scalars] == [c["agent_steps"] for c in curve]
            assert [s.value for s in scalars] == pytest.approx([c[tag] for c in curve], rel=1e-5)
        assert acc.Scalars("learning_rate")[0].value == pytest.approx(float(lr), rel=1e-6)


def test_asked_for_without_the_package_is_refused_in_one_line(monkeypatch):
    """The missing package is simulated (it is installed here): sys.modules['tensorboard'] = None makes
    importlib's find_spec report it absent, as on a machine without the extra."""
    from daf_hydra.compose import compose_config
    from daf_hydra.runs import validate_train_run

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    cfg = compose_config(["pipeline=train", "policy=mlp", "training.tensorboard=true"], None)
    with pytest.raises(DAFError) as err:
        validate_train_run(cfg)
    message = str(err.value)
    assert "\n" not in message and "training.tensorboard=true" in message and "daf_hydra[tensorboard]" in message
