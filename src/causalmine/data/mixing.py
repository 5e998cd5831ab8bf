"""Mixing corpora in training batches: proportional to size, or temperature-scaled.

With temperature T, corpus c is drawn with probability proportional to n_c^(1/T): T=1 is
proportional, larger T moves toward uniform, so small corpora are seen more often.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import torch

from causalmine.data.sampling import EpochSeededSampler, epoch_seed

SAMPLING_CHOICES = ("proportional", "temperature")


def corpus_probabilities(corpus_of: list[str], temperature: float) -> dict[str, float]:
    if temperature <= 0:
        raise ValueError(f"data.temperature must be > 0, got {temperature}")
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
