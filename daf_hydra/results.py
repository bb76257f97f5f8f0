"""What a pipeline returns (`PipelineResult`): which stages ran, which failed, what they produced; written as the
run's pipeline.json. Below the pipelines, since the shared run steps (daf_hydra.runs) fill it in too."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

SUCCESS, PARTIAL, FAILED = "success", "partial", "failed"
PIPELINE_FILE = "pipeline.json"


@dataclass
class PipelineResult:
    """`status`: success (every stage completed), partial (some completed, some failed), failed (nothing useful).

    `errors` are one-line messages, one per failed stage; `outputs` maps names to what the stages produced (paths,
    result objects). `stages` holds one record per stage of the pipelines run by `orchestrators.stages.Stages`:
    status (completed | failed | not_run), whether it was reused from an earlier run, its outputs, error, inputs
    key and duration; it is what a re-run in the same directory reads back. `timestamp`: when it started."""

    pipeline_name: str
    status: str
    stages_completed: list[str] = field(default_factory=list)
    stages_failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    total_time_seconds: float = 0.0
    timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def is_success(self) -> bool:
        return self.status == SUCCESS

    @property
    def final_checkpoint(self) -> Optional[str]:
        """The trained checkpoint (`outputs['final_checkpoint']`), None when nothing was trained."""
        return self.outputs.get("final_checkpoint")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: outputs that are not JSON values (paths, result objects) are written as their `to_dict()`
        when they have one, else as text."""
        return {
            "pipeline_name": self.pipeline_name,
            "status": self.status,
            "stages_completed": list(self.stages_completed),
            "stages_failed": list(self.stages_failed),
            "errors": list(self.errors),
            "outputs": json_value(self.outputs),
            "total_time_seconds": self.total_time_seconds,
            "timestamp": self.timestamp.isoformat(),
            "stages": json_value(self.stages),
        }

    def write(self, run_dir: str | Path) -> Path:
        """Write `pipeline.json` into the run directory (atomically, like every run record)."""
        from daf_hydra.records import write_json_atomic

        path = Path(run_dir) / PIPELINE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.to_dict())
        return path


def json_value(value: Any) -> Any:
    """`value` as JSON values: tables (pandas) as their rows, objects with `to_dict()` as that, other dataclasses
    field by field, paths and anything else as text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return json_value(value.to_dict("records"))
    if hasattr(value, "to_dict"):
        return json_value(value.to_dict())
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_value(getattr(value, f.name)) for f in fields(value)}
    return str(value)
