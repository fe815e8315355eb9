"""Where the data stages run: in this process (``local``) or on a Ray cluster (``ray``).

``EngineConfig`` is a section of the curate, score and generate configs (and of a
recipe, for the whole run), so ``--engine ray --ray-address auto`` reaches every data
stage the same way. With ``kind: ray`` and no address, ``start_or_join`` starts a Ray
cluster on this machine with all its cores (a laptop user needs nothing else); with an
address (``auto`` for the cluster this machine belongs to, ``ray://HOST:10001`` for a
remote one, as KubeRay and ``ray up`` print) it joins that cluster.

Ray is an optional extra (``pip install sftflow[ray]``) and is imported only inside
``start_or_join``: the local engine never loads it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

from pydantic import Field, model_validator

from ..config import StrictModel

EngineKind = Literal["local", "ray"]


class EngineConfig(StrictModel):
    kind: EngineKind = Field("local", description="local = this process; ray = Ray Data on a cluster")
    address: str | None = Field(None, description="ray: 'auto' (the cluster this machine is in), "
                                                  "'ray://HOST:10001', or unset to start one here")
    num_cpus: int | None = Field(None, ge=1, description="ray, no address: CPUs of the cluster started "
                                                         "here (default: all cores)")
    cpus_per_actor: float = Field(1.0, gt=0, description="ray: CPUs reserved by each worker or model actor")
    gpus_per_actor: float = Field(0.0, ge=0, description="ray: GPUs per model actor (scoring, embedding, "
                                                         "a local generator); 0 on CPU clusters")
    actors: int | None = Field(None, ge=1, description="ray: model actors (default: as many as fit)")
    batch_size: int = Field(1024, ge=1, description="ray: records per batch handed to a worker")
    shards: bool = Field(False, description="ray: leave the outputs as folders of shards written by the "
                                            "workers (kept/, rejected/) instead of joining them into one file")

    @model_validator(mode="after")
    def _address_needs_ray(self):
        if self.kind == "local" and self.address is not None:
            raise ValueError("engine.address is for kind 'ray'; set --engine ray as well")
        return self


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError("the ray engine needs Ray: pip install 'sftflow[ray]'") from None
    return ray


# Ray keeps a task's small return values (under ``max_direct_call_object_size``, 100 KB by
# default) in the heap of the process that owns them, and the driver owns every block of a
# Ray Data shuffle. A sort shuffle cuts each map block into one piece per partition, and the
# partitions grow with the input, so past some size every piece is small and the whole
# shuffle sits in the driver's heap: near dedup on 1M records (pieces of ~1,000 band rows,
# 32 KB) grew the driver by 1.2-1.5 GB, against 15 MB at 250k records (pieces of 130 KB). A
# cluster started here puts every return over 1 KB in the object store, which spills to
# disk; a cluster joined by address keeps its own setting (docs/scaling.md says how to set it).
SMALL_RETURN_BYTES = 1024


def start_or_join(cfg: EngineConfig) -> bool:
    """Connect this process to Ray; returns True when this call started the connection.

    A process already connected (a test's fixture, a user's notebook) is used as it is;
    otherwise ``cfg.address`` is joined, or a cluster is started here with ``cfg.num_cpus``
    (all cores when unset) and no dashboard.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return False
    if cfg.address:
        ray.init(address=cfg.address, log_to_driver=False)
    else:
        ray.init(num_cpus=cfg.num_cpus, include_dashboard=False, log_to_driver=False,
                 _system_config={"max_direct_call_object_size": SMALL_RETURN_BYTES})
    return True


def configure_data(ray) -> None:
    """Ray Data settings for sftflow's stages: the pull-based sort shuffle (its reduce
    steps are plain tasks; the hash shuffle starts aggregator actors for every groupby,
    seconds each on a small cluster) and no progress bars (sftflow prints its own)."""
    from ray.data.context import ShuffleStrategy
    ctx = ray.data.DataContext.get_current()
    ctx.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    ctx.enable_progress_bars = False


@contextlib.contextmanager
def ray_session(cfg: EngineConfig) -> Iterator[object]:
    """Ray for the length of one stage: disconnects afterwards only if it connected."""
    ray = _import_ray()
    started = start_or_join(cfg)
    configure_data(ray)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def shuffle_partitions(ray) -> int:
    """Partitions of a groupby or join: two per CPU of the cluster. (Ray's default, 200,
    makes a small run on a laptop spend its time starting reduce tasks.)"""
    return max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))


def worker_count(cfg: EngineConfig) -> int:
    """Actors for a model step: ``cfg.actors``, else as many as the cluster's resources hold."""
    if cfg.actors:
        return cfg.actors
    ray = _import_ray()
    res = ray.cluster_resources()
    by_cpu = int(res.get("CPU", 1) // cfg.cpus_per_actor)
    by_gpu = int(res.get("GPU", 0) // cfg.gpus_per_actor) if cfg.gpus_per_actor else by_cpu
    return max(1, min(by_cpu, by_gpu))
