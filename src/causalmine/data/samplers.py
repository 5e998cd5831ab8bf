"""The samplers: batch order that survives a resume, shards per rank, corpus mixing.

Training order is seeded by (seed, epoch), never by the global RNG.

``EpochSeededSampler`` draws its permutation (length-grouped or plain shuffled) from a generator
seeded by the run's seed and the epoch that Lightning sets with ``set_epoch``, so the batches of
epoch e are the same whether the run was interrupted or not. ``ResumableDataLoader`` has a
``state_dict``/``load_state_dict`` (Lightning saves it in every checkpoint; ``causalmine.training.resume``
gives it back on ``ckpt_path=``); on a resume in the middle of an epoch it skips the batches that
epoch had already delivered, so training continues with exactly the next batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed mixed from (seed, epoch): seeds 42 and 43 never share an epoch's order."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)


class EpochSeededSampler(Sampler[int]):
    """Indices of one epoch: grouped by length into batches (less padding) or plainly shuffled.

    The order is a function of ``(seed, epoch)`` only; Lightning calls ``set_epoch`` before every
    training epoch, also on a resumed run.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, seed: int, group_by_length: bool = True
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order ``__iter__`` yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        if self.group_by_length:
            indices = get_length_grouped_indices(self.lengths, self.batch_size, generator=generator)
        else:
            indices = torch.randperm(len(self.lengths), generator=generator).tolist()
        return iter(indices)


class ShardSampler(Sampler[int]):
    """One process's share of another sampler's indices in distributed training (DDP): every
    ``world_size``-th index of the shared order, starting at ``rank``.

    Every rank draws the same order (the inner sampler is seeded by seed and epoch, not by rank),
    so the shards never overlap. ``pad=True`` (training) repeats the first indices of the order
    until every rank has the same count, hence the same number of optimizer steps (DDP needs
    that; at most ``world_size - 1`` examples are seen twice in an epoch, as with torch's
    ``DistributedSampler``); ``pad=False`` (evaluation) yields every index exactly once, so
    synced metrics count each example once.
    """

    def __init__(self, sampler: Sampler[int], rank: int, world_size: int, pad: bool) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.sampler = sampler
        self.rank = rank
        self.world_size = world_size
        self.pad = pad

    @property
    def epoch(self) -> int:
        return int(getattr(self.sampler, "epoch", 0))

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        total = len(self.sampler)  # type: ignore[arg-type]
        if self.pad:
            return -(-total // self.world_size)
        return len(range(self.rank, total, self.world_size))

    def __iter__(self) -> Iterator[int]:
        indices = list(self.sampler)
        if self.pad and indices:
            missing = -len(indices) % self.world_size
            indices += (indices * (missing // len(indices) + 1))[:missing]
        return iter(indices[self.rank :: self.world_size])


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` whose position within an epoch is saved in Lightning checkpoints.

    The state is (epoch, batches delivered in that epoch). Lightning does not prefetch from a
    loader whose length is known, so batches delivered = batches trained on when a checkpoint is
    written. After ``load_state_dict`` the next iteration over the same epoch skips that many
    batches (they are still collated, which is cheap for pre-encoded data, so any sampler,
    wrapped or not, stays correct); an iteration over another epoch starts from its beginning.
    The epoch is read from the sampler (``set_epoch``). The loader's own generator is reseeded
    per epoch, so worker seeds never draw from, or depend on, the global RNG.
    """

    def __init__(self, *args: Any, seed: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("generator", torch.Generator())
        super().__init__(*args, **kwargs)
        self.seed = seed
        self._delivered = (0, 0)
        self._resume_at: tuple[int, int] | None = None

    def _epoch(self) -> int:
        return int(getattr(self.sampler, "epoch", 0))

    def __iter__(self) -> Iterator[Any]:
        epoch = self._epoch()
        skip = self._resume_at[1] if self._resume_at and self._resume_at[0] == epoch else 0
        self._resume_at = None
        self.generator.manual_seed(epoch_seed(self.seed, epoch))
        self._delivered = (epoch, 0)
        for position, batch in enumerate(super().__iter__(), start=1):
            self._delivered = (epoch, position)
            if position > skip:
                yield batch

    def state_dict(self) -> dict[str, int]:
        """Where this loader stands: the epoch and how many of its batches were delivered."""
        epoch, delivered = self._delivered
        return {"epoch": epoch, "batches": delivered}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Skip the delivered batches the next time this epoch is iterated."""
        self._resume_at = (int(state["epoch"]), int(state["batches"]))


def resumable_train_loader(
    dataset: Dataset,
    lengths: Sequence[int],
    batch_size: int,
    group_by_length: bool,
    collate_fn: Callable[[list[Any]], Any],
    seed: int,
    num_workers: int = 0,
    sampler: Sampler[int] | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> ResumableDataLoader:
    """The training loader: order seeded by (``seed``, epoch), resumable mid-epoch; under DDP
    (``world_size`` > 1) each rank takes its shard of that order.

    ``sampler`` replaces the default length-grouped one; it must be a function of the epoch it
    is given with ``set_epoch`` (like :class:`~causalmine.data.samplers.TemperatureSampler`)."""
    if sampler is None:
        sampler = EpochSeededSampler(lengths, batch_size, seed, group_by_length)
    if world_size > 1:
        sampler = ShardSampler(sampler, rank, world_size, pad=True)
    return ResumableDataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        seed=seed,
    )


# ---- mixing corpora in training batches: proportional to size, or temperature-scaled.
# With temperature T, corpus c is drawn with probability proportional to n_c^(1/T): T=1 is
# proportional, larger T moves toward uniform, so small corpora are seen more often.


def corpus_probabilities(corpus_of: list[str], temperature: float) -> dict[str, float]:
    sizes = Counter(corpus_of)
    scaled = {c: n ** (1.0 / temperature) for c, n in sizes.items()}
    total = sum(scaled.values())
    return {c: v / total for c, v in scaled.items()}


class TemperatureSampler(EpochSeededSampler):
    """Draws ``len(dataset)`` examples per epoch, corpora weighted by temperature, then orders
    each mega-batch of ``50 × batch_size`` draws by length (long first) so batches need little
    padding. Seeded by ``(seed, epoch)`` like :class:`EpochSeededSampler`, so it resumes exactly."""

    def __init__(
        self,
        corpus_of: list[str],
        lengths: list[int],
        batch_size: int,
        temperature: float,
        seed: int,
    ) -> None:
        super().__init__(lengths, batch_size, seed)
        probabilities = corpus_probabilities(corpus_of, temperature)
        sizes = Counter(corpus_of)
        self.weights = torch.tensor(
            [probabilities[c] / sizes[c] for c in corpus_of], dtype=torch.double
        )

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        drawn = torch.multinomial(
            self.weights, len(self.lengths), replacement=True, generator=generator
        ).tolist()
        mega = 50 * self.batch_size
        for start in range(0, len(drawn), mega):
            yield from sorted(drawn[start : start + mega], key=lambda i: -self.lengths[i])
