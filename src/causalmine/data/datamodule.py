"""The ``LightningDataModule``: read corpora, split, encode, and batch with dynamic padding."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedTokenizerBase

from causalmine.data.accounting import ON_ERROR_CHOICES, ReadReport
from causalmine.data.collate import CausalCollator
from causalmine.data.corpora import CorpusSplits, load_cnc
from causalmine.data.encoding import EncodedExample, encode_example
from causalmine.data.formats import Example
from causalmine.data.sampling import resumable_train_loader
from causalmine.data.splits import split_by_document

log = logging.getLogger(__name__)

CORPUS_LOADERS = {"cnc": load_cnc}


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
    """Train/val/test data for the unified model.

    Validation is carved from the training data by document (``val_fraction``, ``split_seed``,
    independent of the training seed so that sweeping seeds keeps the split); the corpus's
    held-out split is the test split.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        root: str,
        corpus: str = "cnc",
        max_length: int = 256,
        batch_size: int = 16,
        eval_batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        split_seed: int = 1234,
        span_heads: int = 3,
        group_by_length: bool = True,
        pad_to_multiple_of: int | None = None,
        on_error: str = "raise",
        download: bool = True,
        limit_examples: int | None = None,
    ) -> None:
        super().__init__()
        if corpus not in CORPUS_LOADERS:
            raise ValueError(f"data.corpus must be one of {sorted(CORPUS_LOADERS)}, got {corpus!r}")
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"data.on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        if max_length > (tokenizer.model_max_length or max_length):
            raise ValueError(f"data.max_length={max_length} exceeds the tokenizer's window ({tokenizer.model_max_length})")
        self.tokenizer = tokenizer
        self.root = root
        self.corpus = corpus
        self.max_length = max_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.span_heads = span_heads
        self.group_by_length = group_by_length
        self.on_error = on_error
        self.download = download
        self.limit_examples = limit_examples
        self.collator = CausalCollator(tokenizer, pad_to_multiple_of)
        self.datasets: dict[str, EncodedDataset] = {}
        self.reports: list[ReadReport] = []
        self.stats: dict[str, Any] = {}

    def prepare_data(self) -> None:
        # download once per node before processes read the files
        if self.corpus == "cnc":
            from causalmine.data.corpora import cnc_files

            cnc_files(self.root, self.download)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        corpus: CorpusSplits = CORPUS_LOADERS[self.corpus](self.root, self.on_error, self.download)
        self.reports = corpus.reports
        train, val = split_by_document(corpus.train, self.val_fraction, self.split_seed)
        test = corpus.test
        if self.limit_examples:
            train, val, test = (part[: self.limit_examples] for part in (train, val, test))
        self.datasets = {"train": self._encode(train, "train"), "val": self._encode(val, "val"), "test": self._encode(test, "test")}
        log.info("data set-up:\n%s", self.summary())

    def _encode(self, examples: list[Example], split: str) -> EncodedDataset:
        items = [encode_example(e, self.tokenizer, self.max_length, self.span_heads) for e in examples]
        relation_counts = Counter(len(e.relations) for e in examples if e.relations is not None)
        over = sum(n for k, n in relation_counts.items() if k > self.span_heads)
        extra = sum((k - self.span_heads) * n for k, n in relation_counts.items() if k > self.span_heads)
        truncated = sum(1 for item in items if item.num_truncated_words)
        self.stats[split] = {
            "sentences": len(items),
            "with_sequence_label": sum(1 for e in examples if e.seq_label is not None),
            "with_spans": sum(1 for e in examples if e.relations is not None),
            "relations": sum(k * n for k, n in relation_counts.items()),
            "sentences_over_span_heads": over,
            # only training loses them: evaluation scores against every gold relation
            "relations_beyond_span_heads": extra,
            "truncated_sentences": truncated,
            "documents": len({(e.corpus, e.doc_id) for e in examples}),
        }
        return EncodedDataset(items)

    def summary(self) -> str:
        lines = [report.summary() for report in self.reports]
        for split, stats in self.stats.items():
            lines.append(f"{split}: " + ", ".join(f"{k}={v}" for k, v in stats.items()))
            if split == "train" and stats["relations_beyond_span_heads"]:
                lines.append(
                    f"  {stats['sentences_over_span_heads']} training sentences have more than {self.span_heads} relations; "
                    f"{stats['relations_beyond_span_heads']} relations are left out of training (never out of evaluation)"
                )
        return "\n".join(lines)

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        return resumable_train_loader(dataset, dataset.lengths, self.batch_size, self.group_by_length, self.collator, self.num_workers)

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.eval_batch_size,
            shuffle=False,
            collate_fn=self.collator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
