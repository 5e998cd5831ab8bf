"""The training batch order: a function of (seed, epoch) only, and resumable mid-epoch."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from causalmine.data.samplers import EpochSeededSampler, ResumableDataLoader, ShardSampler

_RNG = random.Random(0)
LENGTHS = [_RNG.randint(3, 60) for _ in range(1000)]


def _order(seed: int, epoch: int, group_by_length: bool = True) -> list[int]:
    sampler = EpochSeededSampler(LENGTHS, batch_size=8, seed=seed, group_by_length=group_by_length)
    sampler.set_epoch(epoch)
    return list(sampler)


def test_order_depends_on_seed_and_epoch_only():
    for group_by_length in (True, False):
        torch.manual_seed(1)
        first = _order(42, 3, group_by_length)
        torch.manual_seed(2)
        torch.rand(100)  # whatever the global generator did in between
        assert _order(42, 3, group_by_length) == first
        assert sorted(first) == list(range(len(LENGTHS)))
        assert _order(42, 4, group_by_length) != first
        assert _order(43, 3, group_by_length) != first


def test_length_grouping_keeps_similar_lengths_together():
    order = _order(42, 0)
    spread = [max(LENGTHS[i] for i in b) - min(LENGTHS[i] for i in b) for b in _batches(order)]
    shuffled = [
        max(LENGTHS[i] for i in b) - min(LENGTHS[i] for i in b)
        for b in _batches(_order(42, 0, False))
    ]
    assert sum(spread) < 0.5 * sum(shuffled)


def _batches(order: list[int], size: int = 8) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def _loader() -> ResumableDataLoader:
    sampler = EpochSeededSampler(LENGTHS, batch_size=8, seed=7)
    return ResumableDataLoader(
        list(range(len(LENGTHS))), batch_size=8, sampler=sampler, collate_fn=list, seed=7
    )


def test_loader_resumes_mid_epoch_with_the_next_batch():
    loader = _loader()
    loader.sampler.set_epoch(2)
    uninterrupted = list(loader)
    iterator = iter(loader)
    consumed = [next(iterator) for _ in range(5)]
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": 5} and consumed == uninterrupted[:5]

    resumed = _loader()  # a new process: fresh objects, only the state carries over
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)
    assert consumed + list(resumed) == uninterrupted
    assert list(resumed) == uninterrupted  # the skip applies once


def test_loader_state_of_a_finished_epoch_does_not_skip_the_next():
    loader = _loader()
    list(loader)
    resumed = _loader()
    resumed.load_state_dict(loader.state_dict())  # epoch 0, every batch delivered
    resumed.sampler.set_epoch(1)
    loader.sampler.set_epoch(1)
    assert list(resumed) == list(loader)


@given(st.integers(1, 40), st.integers(1, 5), st.integers(0, 3))
@settings(max_examples=100, deadline=None)
def test_ddp_shards_cover_the_epoch(n, world_size, epoch):
    """Ranks share one order: evaluation shards see every example exactly once; training shards
    are equally long (same number of steps on every rank), cover every example and repeat at
    most world_size - 1 of them."""
    inner = EpochSeededSampler(LENGTHS[:n], batch_size=4, seed=7)
    inner.set_epoch(epoch)
    order = list(inner)
    for pad in (False, True):
        shards = []
        for rank in range(world_size):
            shard = ShardSampler(EpochSeededSampler(LENGTHS[:n], 4, seed=7), rank, world_size, pad)
            shard.set_epoch(epoch)  # Lightning sets the epoch on the loader's sampler
            assert shard.epoch == epoch
            shards.append(list(shard))
            assert len(shards[-1]) == len(shard)
        drawn = [i for shard in shards for i in shard]
        if not pad:
            assert sorted(drawn) == sorted(order)
        else:
            assert len({len(shard) for shard in shards}) == 1
            assert set(drawn) == set(order)
            assert len(drawn) - len(order) <= world_size - 1
        # every rank's shard follows the shared order (length-grouped batches stay grouped)
        assert all(shard == order[rank::world_size] for rank, shard in enumerate(shards) if not pad)


def test_a_rank_outside_the_world_is_refused():
    with pytest.raises(ValueError, match="rank 2 is not in"):
        ShardSampler(EpochSeededSampler(LENGTHS, 4, seed=7), 2, 2, pad=True)
