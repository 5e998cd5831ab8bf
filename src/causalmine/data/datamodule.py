"""The ``LightningDataModule``: read corpora, split, guard against leakage, encode, batch."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler
from transformers import PreTrainedTokenizerBase

from causalmine.data.accounting import ON_ERROR_CHOICES, DataError, ReadReport
from causalmine.data.collate import CausalCollator
from causalmine.data.corpora import CorpusSplits, cnc_files, load_cnc, load_csv, load_unicausal
from causalmine.data.encoding import EncodedExample, encode_example
from causalmine.data.leakage import leaked
from causalmine.data.samplers import (
    SAMPLING_CHOICES,
    ShardSampler,
    TemperatureSampler,
    resumable_train_loader,
)
from causalmine.data.splits import split_for_validation
from causalmine.schema import Example

log = logging.getLogger(__name__)

LAYOUTS = ("cnc", "unicausal", "csv")
SPLITS = ("train", "val", "test")


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


def corpus_names(kind: str, corpora: list[str] | None = None, name: str = "csv") -> list[str]:
    """The corpora a data config reads, in order (the names metrics are reported under)."""
    if kind == "cnc":
        return ["cnc"]
    if kind == "unicausal":
        return list(corpora or [])
    return [name]


class CausalDataModule(L.LightningDataModule):
    """Train/val/test data for the unified model, from one corpus or several.

    ``kind`` picks the layout: ``cnc`` (CNC V2 under ``root``), ``unicausal`` (UniCausal-format
    ``corpora`` under ``root``; ``cnc`` in the list reads CNC from ``cnc_root``), or ``csv``
    (a user's ``train_file``/``val_file``/``test_file`` with ``columns``). Validation is carved
    from training data by document unless the corpus has its own (``split_seed`` is independent
    of the training seed, so seed sweeps keep one split). Batches mix corpora and tasks.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        kind: str = "cnc",
        root: str = "data",
        corpora: list[str] | None = None,
        cnc_root: str | None = None,
        pairs: bool = False,
        name: str = "csv",
        train_file: str | None = None,
        val_file: str | None = None,
        test_file: str | None = None,
        columns: dict[str, str | None] | None = None,
        max_length: int = 256,
        batch_size: int = 8,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        split_seed: int = 1234,
        span_heads: int = 3,
        group_by_length: bool = True,
        pad_to_multiple_of: int | None = None,
        sampling: str = "proportional",
        temperature: float = 2.0,
        drop_leaked: bool = True,
        on_error: str = "raise",
        download: bool = True,
        limit_examples: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if kind not in LAYOUTS:
            raise ValueError(f"data.kind must be one of {LAYOUTS}, got {kind!r}")
        if kind == "unicausal" and not corpora:
            raise ValueError("data=unicausal needs data.corpora, e.g. data.corpora=[because]")
        if kind == "csv" and not train_file:
            raise ValueError("data=csv needs data.train_file")
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"data.on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        if sampling not in SAMPLING_CHOICES:
            raise ValueError(f"data.sampling must be one of {SAMPLING_CHOICES}, got {sampling!r}")
        if max_length > (tokenizer.model_max_length or max_length):
            raise ValueError(
                f"data.max_length={max_length} exceeds the tokenizer's window ({tokenizer.model_max_length})"
            )
        self.tokenizer = tokenizer
        self.kind, self.root, self.corpora, self.cnc_root, self.pairs = (
            kind,
            root,
            list(corpora or []),
            cnc_root,
            pairs,
        )
        self.name, self.files, self.columns = (
            name,
            {"train": train_file, "val": val_file, "test": test_file},
            dict(columns or {}),
        )
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.span_heads = span_heads
        self.group_by_length = group_by_length
        self.sampling = sampling
        self.temperature = temperature
        self.drop_leaked = drop_leaked
        self.on_error = on_error
        self.download = download
        self.limit_examples = limit_examples
        self.seed = seed  # training-batch order (the validation split uses split_seed)
        self.collator = CausalCollator(tokenizer, pad_to_multiple_of)
        self.datasets: dict[str, EncodedDataset] = {}
        self.reports: list[ReadReport] = []
        self.stats: dict[str, Any] = {}

    @property
    def corpus_names(self) -> list[str]:
        return corpus_names(self.kind, self.corpora, self.name)

    def prepare_data(self) -> None:
        # fetch missing files once per node, before any process reads them
        if self.kind == "cnc":
            cnc_files(self.root, self.download, self.pairs)

    def _load(self) -> list[CorpusSplits]:
        if self.kind == "cnc":
            return [load_cnc(self.root, self.on_error, self.download, self.pairs)]
        if self.kind == "csv":
            return [
                load_csv(
                    self.name,
                    self.files["train"],
                    self.files["test"],
                    self.files["val"],
                    self.columns,
                    self.on_error,
                )
            ]
        loaded = []
        for corpus in self.corpora:
            if corpus == "cnc":
                loaded.append(
                    load_cnc(self.cnc_root or self.root, self.on_error, self.download, pairs=True)
                )
            else:
                loaded.append(load_unicausal(self.root, corpus, self.on_error, self.download))
        return loaded

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        loaded = self._load()
        self.reports = [r for corpus in loaded for r in corpus.reports]
        parts: dict[str, list[Example]] = {split: [] for split in SPLITS}
        self.stats["validation_split"] = {}
        for corpus in loaded:
            if corpus.val is not None:
                train, val, how = corpus.train, corpus.val, "given (validation file)"
            else:
                train, val, how = split_for_validation(
                    corpus.train, self.val_fraction, self.split_seed, corpus.name
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
        if not self.limit_examples:
            return examples
        kept, seen = [], Counter()
        for e in examples:
            seen[e.task] += 1
            if seen[e.task] <= self.limit_examples:
                kept.append(e)
        return kept

    def _guard_leakage(self, parts: dict[str, list[Example]]) -> dict[str, int]:
        """Count training/validation sentences that also occur in test data; drop them if asked."""
        counts = {}
        for split in ("train", "val"):
            found = leaked(parts[split], parts["test"])
            counts[split] = len(found)
            if found and self.drop_leaked:
                ids = {id(e) for e in found}
                parts[split] = [e for e in parts[split] if id(e) not in ids]
        counts["dropped"] = self.drop_leaked
        return counts

    def _encode(self, examples: list[Example], split: str) -> EncodedDataset:
        items = [
            encode_example(e, self.tokenizer, self.max_length, self.span_heads) for e in examples
        ]
        sentences = [e for e in examples if e.task == "sentence"]
        relation_counts = Counter(len(e.relations) for e in sentences if e.relations is not None)
        self.stats[split] = {
            "examples": len(items),
            "by_corpus": dict(Counter(e.corpus for e in examples)),
            "sentences": len(sentences),
            "with_sequence_label": sum(1 for e in sentences if e.seq_label is not None),
            "with_spans": sum(1 for e in sentences if e.relations is not None),
            "relations": sum(k * n for k, n in relation_counts.items()),
            "pairs": sum(1 for e in examples if e.task == "pair"),
            "sentences_over_span_heads": sum(
                n for k, n in relation_counts.items() if k > self.span_heads
            ),
            # only training loses them: evaluation scores against every gold relation
            "relations_beyond_span_heads": sum(
                (k - self.span_heads) * n for k, n in relation_counts.items() if k > self.span_heads
            ),
            "truncated_examples": sum(1 for item in items if item.num_truncated_words),
            "spans_cut_by_truncation": sum(
                item.spans_cut_by_truncation(self.span_heads) for item in items
            ),
            "documents": len({(e.corpus, e.doc_id) for e in examples}),
        }
        return EncodedDataset(items)

    def summary(self) -> str:
        lines = [report.summary() for report in self.reports]
        for split in SPLITS:
            if split in self.stats:
                lines.append(
                    f"{split}: " + ", ".join(f"{k}={v}" for k, v in self.stats[split].items())
                )
        train = self.stats.get("train", {})
        if train.get("relations_beyond_span_heads"):
            lines.append(
                f"  {train['sentences_over_span_heads']} training sentences have more than {self.span_heads} relations; "
                f"{train['relations_beyond_span_heads']} relations are left out of training (never out of evaluation)"
            )
        for corpus, how in self.stats.get("validation_split", {}).items():
            lines.append(f"  validation split of {corpus}: {how}")
        leakage = self.stats.get("leakage", {})
        if leakage.get("train") or leakage.get("val"):
            action = (
                "dropped from training and validation"
                if self.drop_leaked
                else "kept (data.drop_leaked=true drops them)"
            )
            lines.append(
                f"  leakage: {leakage['train']} training and {leakage['val']} validation sentences also occur in the test data; {action}"
            )
        return "\n".join(lines)

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        sampler = None  # default: epoch-seeded, length-grouped (data.group_by_length)
        if self.sampling == "temperature":
            corpus_of = [item.example.corpus for item in dataset.items]
            sampler = TemperatureSampler(
                corpus_of, dataset.lengths, self.batch_size, self.temperature, self.seed
            )
        return resumable_train_loader(
            dataset,
            dataset.lengths,
            self.batch_size,
            self.group_by_length,
            self.collator,
            self.seed,
            self.num_workers,
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
            batch_size=self.eval_batch_size,
            sampler=sampler,
            collate_fn=self.collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
