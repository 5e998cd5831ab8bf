"""Mining on Ray Data: the same shards, mined by a pool of actors that each hold one model.

The driver plans the shards (cheap: it counts records) and hands the unfinished ones to
``Dataset.map_batches`` with an actor pool; every actor builds its :class:`ShardMiner` once
and writes whole shards to the shared output directory, exactly as the single-process run
does, so both give the same files. ``address=auto`` joins a running cluster (the output
directory must then be on storage every node can write, and causalmine installed on them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from causalmine.inference.documents import ShardSpec
from causalmine.inference.mining import ShardMiner
from causalmine.settings import RaySettings


class _MiningActor:
    """One model per actor; each call mines the shards of its batch."""

    def __init__(self, make_miner: Callable[[], ShardMiner], threads: int) -> None:
        import torch

        torch.set_num_threads(threads)  # as many intra-op threads as CPUs reserved, no more
        self.miner = make_miner()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        manifests = []
        for spec_json in batch["spec"]:
            manifest = self.miner.mine_shard(ShardSpec(**json.loads(spec_json)))
            manifests.append(json.dumps(manifest))
        return {"manifest": manifests}


def mine_on_ray(
    make_miner: Callable[[], ShardMiner], specs: list[ShardSpec], settings: RaySettings
) -> Iterator[dict[str, Any]]:
    """Mine ``specs`` on a Ray actor pool; yield each shard's manifest as it is finished."""
    import ray

    if not specs:
        return
    started_here = not ray.is_initialized()
    if started_here:
        init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if settings.address:
            init["address"] = settings.address
        else:  # a local instance sized for the pool (plus the driver's own reading)
            init["num_cpus"] = max(1, int(settings.workers * settings.cpus_per_worker))
        ray.init(**init)
    try:
        yield from _mine(make_miner, specs, settings)
    finally:
        if started_here:  # a Ray instance this call started ends with it
            ray.shutdown()


def _mine(
    make_miner: Callable[[], ShardMiner], specs: list[ShardSpec], settings: RaySettings
) -> Iterator[dict[str, Any]]:
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts documents and sentences
    dataset = ray.data.from_items(
        [{"spec": json.dumps(spec.to_dict())} for spec in specs], override_num_blocks=len(specs)
    )
    mined = dataset.map_batches(
        _MiningActor,
        fn_constructor_kwargs={
            "make_miner": make_miner,
            "threads": max(1, int(settings.cpus_per_worker)),
        },
        batch_size=1,
        concurrency=settings.workers,
        num_cpus=settings.cpus_per_worker,
        num_gpus=settings.gpus_per_worker,
    )
    for row in mined.iter_rows():
        yield json.loads(row["manifest"])
