"""The ``LightningDataModule``: read corpora, split, guard against leakage, encode, batch."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler
from transformers import PreTrainedTokenizerBase

from causalmine.data.accounting import (
    SPLITS,
    DataError,
    ReadReport,
    setup_summary,
    split_statistics,
)
from causalmine.data.collate import CausalCollator
from causalmine.data.corpora import DataSource, sources_of
from causalmine.data.encoding import EncodedExample, encode_example
from causalmine.data.leakage import leaked
from causalmine.data.samplers import ShardSampler, TemperatureSampler, resumable_train_loader
from causalmine.data.splits import split_for_validation
from causalmine.schema import Example
from causalmine.settings import DataConfig

log = logging.getLogger(__name__)


class EncodedDataset(Dataset):
    def __init__(self, items: list[EncodedExample]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> EncodedExample:
        return self.items[index]

    @property
    def lengths(self) -> list[int]:
        return [len(item.input_ids) for item in self.items]


class CausalDataModule(L.LightningDataModule):
    """Train/val/test data for the unified model, from one corpus or several.

    Its settings are :class:`~causalmine.settings.DataConfig`'s (``kind`` picks the layout:
    ``cnc``, ``unicausal`` or ``csv``). Validation is carved
    from training data by document unless the corpus has its own (``split_seed`` is independent
    of the training seed, so seed sweeps keep one split). Batches mix corpora and tasks.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        span_heads: int = 3,
        seed: int = 0,
        sources: list[DataSource] | None = None,
        **settings: Any,
    ) -> None:
        """``settings``: the keys of :class:`~causalmine.settings.DataConfig` (``data.*``),
        checked there; ``sources``: the corpora to read (default: those the settings name, see
        :func:`~causalmine.data.corpora.sources_of`); ``seed`` orders the training batches (the
        validation split uses ``split_seed``)."""
        super().__init__()
        self.config = config = DataConfig(**settings)
        if config.max_length > (tokenizer.model_max_length or config.max_length):
            raise ValueError(
                f"data.max_length={config.max_length} exceeds the tokenizer's window "
                f"({tokenizer.model_max_length})"
            )
        self.tokenizer = tokenizer
        self.sources = sources if sources is not None else sources_of(config)
        self.span_heads = span_heads
        self.seed = seed  # training-batch order (the validation split uses split_seed)
        self.collator = CausalCollator(tokenizer, config.pad_to_multiple_of)
        self.datasets: dict[str, EncodedDataset] = {}
        self.reports: list[ReadReport] = []
        self.stats: dict[str, Any] = {}

    @property
    def corpus_names(self) -> list[str]:
        """The corpora read, in order (the names metrics are reported under)."""
        return [source.name for source in self.sources]

    def prepare_data(self) -> None:
        # fetch missing files once per node, before any process reads them
        for source in self.sources:
            source.fetch()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        loaded = [source.load() for source in self.sources]
        self.reports = [r for corpus in loaded for r in corpus.reports]
        parts: dict[str, list[Example]] = {split: [] for split in SPLITS}
        self.stats["validation_split"] = {}
        for corpus in loaded:
            if corpus.val is not None:
                train, val, how = corpus.train, corpus.val, "given (validation file)"
            else:
                train, val, how = split_for_validation(
                    corpus.train, self.config.val_fraction, self.config.split_seed, corpus.name
                )
            self.stats["validation_split"][corpus.name] = how
            for split, examples in zip(SPLITS, (train, val, corpus.test), strict=True):
                parts[split] += self._limited(examples)
        self.stats["leakage"] = self._guard_leakage(parts)
        if not parts["train"]:
            raise DataError(
                "the training split is empty (after the validation split and the leakage guard): nothing to train on"
            )
        self.datasets = {split: self._encode(examples, split) for split, examples in parts.items()}
        log.info("data set-up:\n%s", self.summary())

    def _limited(self, examples: list[Example]) -> list[Example]:
        """The first ``limit_examples`` examples of each task (all when unset)."""
        if not self.config.limit_examples:
            return examples
        kept, seen = [], Counter()
        for e in examples:
            seen[e.task] += 1
            if seen[e.task] <= self.config.limit_examples:
                kept.append(e)
        return kept

    def _guard_leakage(self, parts: dict[str, list[Example]]) -> dict[str, int]:
        """Count training/validation sentences that also occur in test data; drop them if asked."""
        counts = {}
        for split in ("train", "val"):
            found = leaked(parts[split], parts["test"])
            counts[split] = len(found)
            if found and self.config.drop_leaked:
                ids = {id(e) for e in found}
                parts[split] = [e for e in parts[split] if id(e) not in ids]
        counts["dropped"] = self.config.drop_leaked
        return counts

    def _encode(self, examples: list[Example], split: str) -> EncodedDataset:
        items = [
            encode_example(e, self.tokenizer, self.config.max_length, self.span_heads)
            for e in examples
        ]
        self.stats[split] = split_statistics(examples, items, self.span_heads)
        return EncodedDataset(items)

    def summary(self) -> str:
        """What set-up read, kept, split and dropped (logged, and in ``metrics.json``)."""
        return setup_summary(self.reports, self.stats, self.span_heads, self.config.drop_leaked)

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        sampler = None  # default: epoch-seeded, length-grouped (data.group_by_length)
        if self.config.sampling == "temperature":
            corpus_of = [item.example.corpus for item in dataset.items]
            sampler = TemperatureSampler(
                corpus_of,
                dataset.lengths,
                self.config.batch_size,
                self.config.temperature,
                self.seed,
            )
        return resumable_train_loader(
            dataset,
            dataset.lengths,
            self.config.batch_size,
            self.config.group_by_length,
            self.collator,
            self.seed,
            self.config.num_workers,
            sampler=sampler,
            **self._distribution(),
        )

    def _distribution(self) -> dict[str, int]:
        """This process's rank and the number of processes (1 outside distributed training)."""
        trainer = self.trainer
        if trainer is None:
            return {"rank": 0, "world_size": 1}
        return {"rank": trainer.global_rank, "world_size": trainer.world_size}

    def _eval_loader(self, split: str) -> DataLoader:
        dataset = self.datasets[split]
        sampler: Sampler[int] = SequentialSampler(dataset)
        if (distribution := self._distribution())["world_size"] > 1:
            sampler = ShardSampler(sampler, **distribution, pad=False)
        return DataLoader(
            dataset,
            batch_size=self.config.eval_batch_size,
            sampler=sampler,
            collate_fn=self.collator,
            num_workers=self.config.num_workers,
            persistent_workers=self.config.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
