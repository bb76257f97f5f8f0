"""SLURM jobs as a user sees them: state, pending reason and elapsed time (squeue), whether a pending job can
ever start on this cluster (scontrol), and sbatch's refusal in one line.

SLURM keeps a job PENDING forever when it asks for more than the cluster has (2 nodes of a 1-node partition:
`PartitionNodeLimit`), and sbatch prints a multi-line error for a request it refuses outright. Both are the user's
request not fitting the cluster, so both become one line naming the request and the limit:

    job 42 asks 2 nodes; partition debug allows 1 (PartitionNodeLimit)

`unschedulable_reason(job_id)` is the check (None while the job may still start); daf_hydra.launchers and
daf_hydra.distributed_training cancel such a job and record its run failed. It asks SLURM afresh each time (a few
milliseconds), so any launcher holding a job id can use it.
"""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass
from typing import Optional, Sequence

# Pending reasons that no amount of waiting clears: the request exceeds what the partition, its nodes, the
# account or the QOS will ever give (an administrator would have to change the cluster).
NEVER_CLEARS = {"PartitionNodeLimit", "PartitionConfig", "PartitionTimeLimit", "BadConstraints", "InvalidAccount",
                "InvalidQOS", "QOSNotAllowed", "DependencyNeverSatisfied", "ReqNodeNotAvail"}
PER_JOB_LIMIT = re.compile(r"^(QOS|Assoc)(Max|Min)\w*(PerJob|NotSatisfied)\w*$")  # e.g. QOSMaxNodePerJobLimit
# Node states in which a node takes no job until an administrator acts.
NODE_UNAVAILABLE = ("DOWN", "DRAIN", "FAIL", "FUTURE", "INVAL", "NOT_RESPONDING", "POWERED_DOWN", "MAINT")
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING",
          "STAGE_OUT", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "STOPPED"}
TIMEOUT_S = 30.0


@dataclass
class QueuedJob:
    """One line of squeue: `job_id` is SLURM's (`42`, or `42_0` for an element of a job array)."""

    job_id: str
    state: str
    reason: str  # SLURM's pending reason ("None" once running)
    elapsed: str  # SLURM's run time, 0:00 while pending


def queue(job_ids: Sequence[str]) -> dict[str, QueuedJob]:
    """The jobs among `job_ids` (or elements of those arrays) SLURM still lists, by id; a job it no longer
    lists has ended."""
    wanted = {str(j).split("_")[0] for j in job_ids}
    out = _run(["squeue", "-h", "-r", "--me", "-o", "%i|%T|%r|%M"])
    jobs = {}
    for line in out.splitlines():
        job_id, state, reason, elapsed = line.split("|", 3)
        if job_id.split("_")[0] in wanted:
            jobs[job_id] = QueuedJob(job_id, state, reason, elapsed)
    return jobs


def accounted_state(job_id: str) -> Optional[str]:
    """sacct's state of a job (`CANCELLED`, not `CANCELLED by 0`), None when accounting has no record of it."""
    out = _run(["sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "State"], check=False)
    lines = out.split()
    return lines[0] if lines else None


def cancel(job_id: str) -> None:
    _run(["scancel", str(job_id)])


def may_never_start(reason: str) -> bool:
    """Whether squeue's pending reason is one that may never clear (worth asking unschedulable_reason): cheap, so a
    launcher watching many jobs asks scontrol only about these."""
    reason = reason.split(",")[0]
    return reason in NEVER_CLEARS or bool(PER_JOB_LIMIT.match(reason))


def unschedulable_reason(job_id: str) -> Optional[str]:
    """None, or one line saying why pending job `job_id` can never start on this cluster, naming what it asks and
    what the cluster allows (`job 42 asks 2 nodes; partition debug allows 1 (PartitionNodeLimit)`)."""
    job = _show("job", job_id)
    if not job or job[0].get("JobState") != "PENDING":
        return None
    j = job[0]
    reason = j.get("Reason", "None").split(",")[0]
    if not may_never_start(reason):
        return None
    name = j.get("Partition", "")
    part = (_show("partition", name) or [{}])[0]
    nodes = [n for n in _show("node") if name in n.get("Partitions", "").split(",")]
    ask = f"job {job_id} asks"
    if reason == "ReqNodeNotAvail":
        down = [f"{n['NodeName']} {n.get('State', '?')}" for n in nodes
                if any(s in n.get("State", "") for s in NODE_UNAVAILABLE)]
        if len(down) < len(nodes) or not nodes:
            return None  # some node may still take it
        return f"{ask} partition {name}, whose nodes are all unavailable ({', '.join(down)}) ({reason})"
    if reason in ("PartitionNodeLimit", "PartitionConfig"):  # SLURM gives either for too many nodes
        wanted = int(j.get("NumNodes", "1").split("-")[0])
        limits = [int(v) for v in (part.get("MaxNodes"), part.get("TotalNodes")) if v and v.isdigit()]
        least = int(part.get("MinNodes", "0") or 0)
        if wanted < least:
            return f"{ask} {wanted} node{_s(wanted)}; partition {name} needs at least {least} ({reason})"
        if limits and wanted > min(limits):
            return f"{ask} {wanted} node{_s(wanted)}; partition {name} allows {min(limits)} ({reason})"
    if reason == "PartitionTimeLimit":
        return f"{ask} a time limit of {j.get('TimeLimit')}; partition {name} allows {part.get('MaxTime')} ({reason})"
    if reason == "PartitionConfig" and nodes:
        beyond = _beyond_nodes(j, nodes, part)
        if beyond:
            return f"{ask} {beyond[0]} per node; partition {name}'s nodes have at most {beyond[1]} ({reason})"
    if reason == "BadConstraints":
        return f"{ask} features {j.get('Features')}; no node of partition {name} has them ({reason})"
    if reason in ("InvalidAccount", "InvalidQOS", "QOSNotAllowed"):
        return f"{ask} account {j.get('Account')} and QOS {j.get('QOS')}; SLURM refuses them ({reason})"
    return f"{ask} {j.get('TRES', 'resources')} in partition {name}; SLURM will never start it ({reason})"


def _beyond_nodes(job: dict[str, str], nodes: list[dict[str, str]], part: dict[str, str]) -> Optional[tuple[str, str]]:
    """What a PartitionConfig job asks per node beyond the partition's largest node, and that node's size (CPUs,
    then memory)."""
    count = max(int(job.get("NumNodes", "1").split("-")[0]), 1)
    cpus = math.ceil(int(job.get("NumCPUs", "1")) / count)
    most_cpus = max(int(n.get("CPUEfctv") or n.get("CPUTot") or 0) for n in nodes)
    cap = part.get("MaxCPUsPerNode", "UNLIMITED")
    if cap.isdigit():
        most_cpus = min(most_cpus, int(cap))
    if cpus > most_cpus:
        return f"{cpus} CPUs", str(most_cpus)
    mem = _megabytes(job.get("MinMemoryNode")) or _megabytes(job.get("MinMemoryCPU")) * cpus
    most_mem = max(_megabytes(n.get("RealMemory")) for n in nodes)
    if mem > most_mem:
        return f"{mem:,} MB of memory", f"{most_mem:,} MB"
    return None


def sbatch_refusal(stderr: str) -> str:
    """sbatch's multi-line refusal as one line (its last `error:`), plus what the cluster has when the refusal is
    about generic resources (GPUs)."""
    errors = [line.split("error:", 1)[1].strip() for line in stderr.splitlines() if "error:" in line]
    message = errors[-1] if errors else (stderr.strip().splitlines() or ["sbatch failed"])[-1]
    if "gres" in stderr.lower() or "generic resource" in stderr.lower():
        gres = sorted({g for n in _show("node") for g in n.get("Gres", "(null)").split(",") if g != "(null)"})
        message += f"; this cluster's nodes have {'gres ' + ', '.join(gres) if gres else 'no gres (no GPUs)'}"
    return message


def _show(entity: str, name: str = "") -> list[dict[str, str]]:
    """`scontrol show -o <entity> [name]` as one dict per record; [] when SLURM does not know `name`."""
    out = _run(["scontrol", "show", "-o", entity, *([str(name)] if name else [])], check=False)
    return [dict(re.findall(r"(\S+?)=(\S*)", line)) for line in out.splitlines() if "=" in line]


def _megabytes(value: Optional[str]) -> int:
    """SLURM's memory fields (`12052M`, `24G`, `24105`) in MB."""
    match = re.match(r"^(\d+(?:\.\d+)?)([KMGT]?)", value or "")
    if not match:
        return 0
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2}[match.group(2)]
    return int(float(match.group(1)) * scale)


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _run(cmd: list[str], check: bool = True) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc.stdout
