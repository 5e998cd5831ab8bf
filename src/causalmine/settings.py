"""Typed settings: one dataclass per config section, each value checked once.

Every check of a value a researcher sets lives in exactly one ``__post_init__`` below. Hydra
composes ``conf/train.yaml`` over these dataclasses (:func:`register_schemas` puts them in the
ConfigStore as ``schema/<section>``), so a value of the wrong type fails at composition with
its key named; :meth:`TrainConfig.from_config`, the first thing ``train()`` does, builds them
and so checks every range, choice and cross-key rule before any model or data is loaded. A
checkpoint's saved sections go through the same dataclasses when it is loaded.

``eval.py``, ``predict.py`` and ``mine.py`` have one dataclass each (:class:`EvalConfig`,
:class:`PredictConfig`, :class:`MineConfig`), built by ``from_config`` as the first thing their
recipe does: a value of the wrong type, an unknown key, a missing one or a bad choice stops the
run there, with its key named, before a model or a file is read.

This module sits at the bottom of the package, beside :mod:`causalmine.schema`: it imports
nothing from causalmine, so the entry points can register the schemas without loading torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar, TypeVar

LOSS_WEIGHTINGS = ("fixed", "uncertainty")
SPAN_ASSIGNMENTS = ("ordered", "matched", "matched_leading")
GRADIENT_SURGERIES = ("none", "pcgrad")
POOLING_MODES = ("cls", "mean", "pooler")
FREEZE_POLICIES = ("none", "embeddings", "bottom_k", "backbone", "gradual")
FREEZABLE_HEADS = ("seq", "span", "pair")
DECODE_METHODS = ("argmax", "viterbi")
SPAN_KINDS = ("C", "E", "S")
DATA_LAYOUTS = ("cnc", "unicausal", "csv")
ON_ERROR_CHOICES = ("raise", "skip")
SAMPLING_CHOICES = ("proportional", "temperature")
LOGGER_CHOICES = ("csv", "wandb")
TEST_CHECKPOINTS = ("best", "last")
# what checkpoints from before decode.method / decode.required_kinds decode with
DEFAULT_DECODE_METHOD = "argmax"
DEFAULT_REQUIRED_KINDS = ("C", "E")
# the order of a sentence's decoded relations: by head, or most confident first (viterbi only)
RELATION_ORDERS = ("head", "confidence")
DEFAULT_RELATION_ORDER = "head"
EVAL_SPLITS = ("test", "val")
PREDICT_PRECISIONS = ("auto", "fp32", "bf16", "int8")
MATMUL_PRECISIONS = ("highest", "high", "medium")  # torch.set_float32_matmul_precision
PREDICTION_FORMATS = ("jsonl", "cnc")  # predict.py's output
MINING_FORMATS = ("parquet", "jsonl")  # mine.py's shards
TXT_MODES = ("document", "line")  # a .txt file is one document, or one per line
LAUNCHERS = ("local", "ray")


class ConfigError(ValueError):
    """A config value that cannot work; raised before anything heavy starts."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def require_viterbi_for_crf(span_crf: bool, method: str, source: str = "the model") -> None:
    """A model with CRF span heads (``model.span_crf``) decodes under their learned transitions,
    which argmax decoding would ignore: any other ``decode.method`` is refused."""
    _require(
        not span_crf or method == "viterbi",
        f"{source} has CRF span heads (model.span_crf=true): it needs decode.method=viterbi "
        f"(argmax ignores the CRF's transitions), got {method!r}",
    )


def _required_message(key: str) -> str:
    return f"{key} is required: add {key}=… to the command"


def _required(key: str, value: Any) -> None:
    _require(value not in (None, "", "???"), _required_message(key))


def _plain(node: Any) -> Any:
    """An OmegaConf node as plain Python, interpolations resolved (a leaf as it is)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    return node


def _choice(section: str, key: str, value: Any, choices: tuple[str, ...]) -> None:
    name = f"{section}.{key}" if section else key
    _require(value in choices, f"{name} must be one of {', '.join(choices)}, got {value!r}")


@dataclass
class LossWeights:
    """How the task losses add up (``loss.*``; the top-level ``alpha``, ``span_weight`` and
    ``pair_weight`` set the weights).

    - ``weighting=fixed``: ``alpha * seq + span_weight * sum_k span_k + pair_weight * pair``.
    - ``weighting=uncertainty`` (Kendall, Gal & Cipolla, CVPR 2018): each task ``t`` learns a
      log variance ``s_t`` and adds ``w_t * exp(-s_t) * L_t + s_t / 2``. At the optimum
      ``exp(-s_t) = 1 / (2 w_t L_t)``, so the learned weights, not ``w_t``, set the balance;
      a weight of 0 still switches its task off.

    ``span_assignment`` says which gold relation each of the K span heads learns:

    - ``ordered``: head k the k-th relation by position (first tagged word);
    - ``matched``: per sentence, the assignment of relations to heads with the lowest span
      loss, exact; the loss is then the same as ``ordered`` on the reordered labels;
    - ``matched_leading``: the same, but a sentence with R relations keeps them on its first R
      heads, so that head order still means "the first relations", as the scorers and
      ``decode.force_relation`` read it.

    ``seq_start_epoch``: a span warm-up. Training epochs before this one leave the sequence
    loss out (the spans and pairs train alone); from it on, ``alpha`` applies. Validation always
    weighs every task.

    ``gradient_surgery`` says how the tasks' gradients combine in the parameters they share
    (the backbone and the reader): ``none`` adds them (the backward pass of the total);
    ``pcgrad`` (Yu et al., NeurIPS 2020) first removes from each task's gradient its component
    along every other task's gradient that it conflicts with
    (:mod:`causalmine.model.gradient_surgery`). It costs one backward pass per trained task.

    ``seq_label_smoothing``: in training, the sequence loss's targets put this share of their
    mass uniformly over both classes (``torch.nn.functional.cross_entropy``'s
    ``label_smoothing``); 0 is plain cross-entropy. Validation and test losses are plain
    (:meth:`for_evaluation`), so that they stay comparable across runs.
    """

    # These defaults describe a checkpoint that predates a key (it was trained without the
    # feature); a run's defaults are conf/train.yaml's (levers_t2's since RESULTS §8s)
    alpha: float = 1.0  # sequence classification
    span_weight: float = 1.0
    pair_weight: float = 1.0
    weighting: str = "fixed"
    span_assignment: str = "ordered"
    seq_start_epoch: int = 0
    gradient_surgery: str = "none"
    seq_label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        for name in ("alpha", "span_weight", "pair_weight"):
            value = getattr(self, name)
            _require(
                isinstance(value, int | float) and not isinstance(value, bool) and value >= 0,
                f"{name} must be a number >= 0, got {value!r}",
            )
        _choice("loss", "weighting", self.weighting, LOSS_WEIGHTINGS)
        _choice("loss", "span_assignment", self.span_assignment, SPAN_ASSIGNMENTS)
        _choice("loss", "gradient_surgery", self.gradient_surgery, GRADIENT_SURGERIES)
        _require(
            isinstance(self.seq_start_epoch, int)
            and not isinstance(self.seq_start_epoch, bool)
            and self.seq_start_epoch >= 0,
            f"loss.seq_start_epoch must be an integer >= 0, got {self.seq_start_epoch!r}",
        )
        smoothing = self.seq_label_smoothing
        _require(
            isinstance(smoothing, int | float)
            and not isinstance(smoothing, bool)
            and 0 <= smoothing < 1,
            f"loss.seq_label_smoothing must be a number in [0, 1), got {smoothing!r}",
        )

    def at_epoch(self, epoch: int) -> LossWeights:
        """The weights a training step of ``epoch`` uses (no sequence loss before
        ``seq_start_epoch``)."""
        if epoch >= self.seq_start_epoch:
            return self
        return replace(self, alpha=0.0)

    def for_evaluation(self) -> LossWeights:
        """The weights validation and test use: no label smoothing (and every task weighed, as
        long as the caller does not also apply :meth:`at_epoch`, which is for training)."""
        return replace(self, seq_label_smoothing=0.0)

    @property
    def learned(self) -> bool:
        """Whether the balance between tasks is learned (``weighting=uncertainty``)."""
        return self.weighting == "uncertainty"


def saved_section(build: type, values: dict[str, Any] | None) -> dict[str, Any]:
    """A settings section saved by an earlier run (a checkpoint's hyper-parameters, a
    benchmark's recorded recipe) as today's dataclass ``build`` spells it, validated: a key
    added since reads as its default (the feature off, what the run trained with), a key removed
    since is dropped (it no longer changes what runs)."""
    known = {f.name for f in fields(build)}
    return asdict(build(**{k: v for k, v in (values or {}).items() if k in known}))


@dataclass
class LstmConfig:
    enabled: bool = False
    hidden: int = 256  # per direction
    layers: int = 1
    dropout: float = 0.0  # between LSTM layers

    def __post_init__(self) -> None:
        if self.enabled:
            _require(
                self.hidden >= 1 and self.layers >= 1,
                "model.lstm.hidden and model.lstm.layers must be >= 1",
            )
        _require(
            0.0 <= self.dropout < 1.0, f"model.lstm.dropout must be in [0, 1), got {self.dropout!r}"
        )


@dataclass
class NetworkConfig:
    """Everything that defines the network's shape (``model.*``; the top-level ``pooling`` sets
    ``model.pooling``). Saved with checkpoints and exports."""

    name_or_path: str
    tiny: dict[str, Any] | None = None
    pooling: str = "cls"
    span_heads: int = 3
    dropout: float = 0.1  # on backbone outputs
    head_dropout: float = 0.1
    lstm: LstmConfig = field(default_factory=LstmConfig)
    vocab_size: int | None = None  # set from the tokenizer (added marker tokens included)
    # recompute the backbone's activations in the backward pass: less memory, ~30% more compute
    gradient_checkpointing: bool = False
    # a linear-chain CRF over each span head's cause/effect and signal tags: trained by its
    # likelihood, decoded by Viterbi under its learned transitions (needs decode.method=viterbi
    # and loss.span_assignment=ordered)
    span_crf: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.lstm, dict):
            self.lstm = LstmConfig(**self.lstm)
        _require(bool(self.name_or_path), "model.name_or_path is empty")
        _choice("model", "pooling", self.pooling, POOLING_MODES)
        _require(
            isinstance(self.span_heads, int) and self.span_heads >= 1,
            f"model.span_heads must be an integer >= 1, got {self.span_heads!r}",
        )
        for key in ("dropout", "head_dropout"):
            value = getattr(self, key)
            _require(0.0 <= value < 1.0, f"model.{key} must be in [0, 1), got {value!r}")
        _require(
            isinstance(self.span_crf, bool),
            f"model.span_crf must be true or false, got {self.span_crf!r}",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OptimConfig:
    """AdamW and its warm-up/decay schedule (``optim.*``)."""

    # the rates of earlier checkpoints; a run's defaults are conf/train.yaml's (RESULTS §8s)
    lr: float = 1e-4
    head_lr: float | None = 1e-3
    # one task's own head at its own rate (null = head_lr): the span heads, the sequence
    # classifier, the pair classifier; the reader and the pooling serve every task and keep
    # head_lr
    span_head_lr: float | None = None
    seq_head_lr: float | None = None
    pair_head_lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    warmup_steps: int | None = None
    layer_decay: float = 1.0  # backbone lr × layer_decay^(distance from the top layer); 1 = off
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    # AdamW's kernel: true = fused (one kernel for all parameters), false = torch's default
    # (foreach), null = fused where torch has it for the parameters' device (CPU, CUDA, ...)
    fused: bool | None = None

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        _require(self.lr > 0, f"optim.lr must be > 0, got {self.lr!r}")
        for key in ("head_lr", "span_head_lr", "seq_head_lr", "pair_head_lr"):
            value = getattr(self, key)
            _require(value is None or value > 0, f"optim.{key} must be > 0 or null, got {value!r}")
        _require(
            0.0 <= self.warmup_ratio < 1.0,
            f"optim.warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}",
        )
        _require(
            self.warmup_steps is None or self.warmup_steps >= 0,
            f"optim.warmup_steps must be >= 0 or null, got {self.warmup_steps!r}",
        )
        _require(
            0 < self.layer_decay <= 1,
            f"optim.layer_decay must be in (0, 1], got {self.layer_decay!r}",
        )


@dataclass
class FreezeConfig:
    """Which parameters train (``freeze=<policy>``, ``freeze.*``)."""

    policy: str = "none"
    layers: int = 0  # bottom_k
    unfreeze_at_epoch: int = 1  # gradual
    lr_ratio: float = 1.0  # gradual: backbone lr after thawing, relative to optim.lr
    heads: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _choice("freeze", "policy", self.policy, FREEZE_POLICIES)
        unknown = [h for h in self.heads if h not in FREEZABLE_HEADS]
        _require(
            not unknown,
            f"freeze.heads entries must be among {', '.join(FREEZABLE_HEADS)}, got {unknown}",
        )
        _require(
            self.policy != "bottom_k" or self.layers >= 1,
            "freeze=bottom_k needs freeze.layers >= 1",
        )
        _require(
            self.policy != "gradual" or self.unfreeze_at_epoch >= 1,
            "freeze=gradual needs freeze.unfreeze_at_epoch >= 1",
        )
        _require(self.lr_ratio > 0, f"freeze.lr_ratio must be > 0, got {self.lr_ratio!r}")


@dataclass
class DecodeConfig:
    """How span-head tags become relations (``decode.*``). The defaults are those of
    checkpoints from before ``decode.method`` existed; ``conf/train.yaml`` chooses viterbi."""

    # a span head yields a relation only when it predicts all of these kinds
    required_kinds: list[str] = field(default_factory=lambda: list(DEFAULT_REQUIRED_KINDS))
    method: str = DEFAULT_DECODE_METHOD
    force_relation: bool = False
    # a sentence's relations in head order, or most confident first (viterbi only)
    relation_order: str = DEFAULT_RELATION_ORDER

    def __post_init__(self) -> None:
        self.required_kinds = list(self.required_kinds)
        _require(
            set(self.required_kinds) <= set(SPAN_KINDS),
            f"decode.required_kinds must be drawn from {', '.join(SPAN_KINDS)}; "
            f"got {self.required_kinds}",
        )
        _choice("decode", "method", self.method, DECODE_METHODS)
        # the forced relation is a search over the span heads' scores
        _require(
            not self.force_relation or self.method == "viterbi",
            "decode.force_relation=true needs decode.method=viterbi",
        )
        _choice("decode", "relation_order", self.relation_order, RELATION_ORDERS)
        # confidence is the Viterbi path's lead over the all-O path
        _require(
            self.relation_order != "confidence" or self.method == "viterbi",
            "decode.relation_order=confidence needs decode.method=viterbi",
        )


@dataclass
class DataConfig:
    """Where the examples come from and how they are batched (``data=<layout>``, ``data.*``).

    ``kind`` picks the layout: ``cnc`` (CNC V2 under ``root``), ``unicausal`` (UniCausal-format
    ``corpora`` under ``root``; ``cnc`` in the list reads CNC from ``cnc_root``) or ``csv``
    (``train_file``/``val_file``/``test_file`` with ``columns``).
    """

    kind: str = "cnc"
    root: str = "data"
    pairs: bool = False
    max_length: int = 256
    batch_size: int = 8
    eval_batch_size: int = 64
    num_workers: int = 0
    val_fraction: float = 0.1
    split_seed: int = 1234
    group_by_length: bool = True
    pad_to_multiple_of: int | None = None
    sampling: str = "proportional"
    temperature: float = 2.0
    drop_leaked: bool = True
    on_error: str = "raise"
    download: bool = True
    limit_examples: int | None = None
    # unicausal
    corpora: list[str] | None = None
    cnc_root: str | None = None
    # csv
    name: str = "csv"
    train_file: str | None = None
    val_file: str | None = None
    test_file: str | None = None
    columns: dict[str, Any] | None = None

    @property
    def has_pairs(self) -> bool:
        """Whether the training data has pair examples: CNC's marked pairs when asked for
        (``pairs``, under either layout), the other UniCausal corpora's always, a CSV's when it
        names a ``pair_text`` column."""
        if self.kind == "unicausal":
            return self.pairs or any(corpus != "cnc" for corpus in self.corpora or [])
        if self.kind == "csv":
            return bool((self.columns or {}).get("pair_text"))
        return self.pairs

    def __post_init__(self) -> None:
        _choice("data", "kind", self.kind, DATA_LAYOUTS)
        _require(
            self.kind != "unicausal" or bool(self.corpora),
            "data=unicausal needs data.corpora, e.g. data.corpora=[because]",
        )
        _require(self.kind != "csv" or bool(self.train_file), "data=csv needs data.train_file")
        # a key of another layout is a mistake that would otherwise train on the wrong data
        for key, layout in LAYOUT_KEYS.items():
            _require(
                self.kind == layout or getattr(self, key) is None,
                f"data.{key} is set but data.kind={self.kind} does not read it "
                f"(it belongs to data={layout})",
            )
        _choice("data", "on_error", self.on_error, ON_ERROR_CHOICES)
        _choice("data", "sampling", self.sampling, SAMPLING_CHOICES)
        _require(self.temperature > 0, f"data.temperature must be > 0, got {self.temperature!r}")
        _require(
            0.0 <= self.val_fraction < 1.0,
            f"data.val_fraction must be in [0, 1), got {self.val_fraction!r}",
        )
        _require(self.max_length >= 8, f"data.max_length must be >= 8, got {self.max_length!r}")
        _require(
            self.batch_size >= 1 and self.eval_batch_size >= 1,
            "data.batch_size and data.eval_batch_size must be >= 1",
        )
        _require(
            self.limit_examples is None or self.limit_examples >= 1,
            f"data.limit_examples must be >= 1 or null, got {self.limit_examples!r}",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# keys of DataConfig that only one layout reads
LAYOUT_KEYS = {
    "corpora": "unicausal",
    "cnc_root": "unicausal",
    "train_file": "csv",
    "val_file": "csv",
    "test_file": "csv",
    "columns": "csv",
}

# the config sections ``TrainConfig`` types, each with its dataclass
SECTIONS: dict[str, type] = {
    "loss": LossWeights,
    "model": NetworkConfig,
    "optim": OptimConfig,
    "freeze": FreezeConfig,
    "decode": DecodeConfig,
    "data": DataConfig,
}


@dataclass
class TrainConfig:
    """A training run's typed sections and the top-level keys that are checked together."""

    loss: LossWeights
    model: NetworkConfig
    optim: OptimConfig
    freeze: FreezeConfig
    decode: DecodeConfig
    data: DataConfig
    seed: int = 42
    # best checkpoint by this validation metric (higher is better)
    monitor: str = "val/joint_f1"
    # what a sweeper maximises: the sum of these validation metrics
    objective: list[str] | None = None
    test_checkpoint: str = "best"
    loggers: list[str] = field(default_factory=list)
    max_epochs: int | None = None  # trainer.max_epochs (None or -1: no limit)

    def __post_init__(self) -> None:
        # a training rule, not a loss one: a model trained so can still be loaded and scored
        loss = self.loss
        _require(
            loss.alpha + loss.span_weight + loss.pair_weight > 0,
            "alpha, span_weight and pair_weight are all 0: nothing to train",
        )
        start, epochs = loss.seq_start_epoch, self.max_epochs
        _require(
            not (loss.alpha > 0 and epochs is not None and 0 <= epochs <= start),
            f"loss.seq_start_epoch={start} leaves the sequence loss out of all {epochs} epochs "
            "(trainer.max_epochs): lower it, or set alpha=0 for a span-only run",
        )
        pairs_train = loss.pair_weight > 0 and self.data.has_pairs
        _require(
            not (loss.alpha > 0 and start > 0 and loss.span_weight == 0 and not pairs_train),
            f"loss.seq_start_epoch={start} is a span warm-up, but span_weight=0 and no pair task "
            f"train: epochs 0-{start - 1} would train nothing. For a sequence-only run set "
            "loss.seq_start_epoch=0",
        )
        _require(
            isinstance(self.monitor, str) and self.monitor.startswith("val/"),
            f"monitor must name a validation metric (val/…), got {self.monitor!r}",
        )
        keys = self.objective
        _require(
            keys is None
            or (
                isinstance(keys, list)
                and len(keys) > 0
                and all(isinstance(k, str) and k.startswith("val/") for k in keys)
            ),
            f"objective must be a non-empty list of validation metrics (val/…), got {keys!r}",
        )
        _choice("", "test_checkpoint", self.test_checkpoint, TEST_CHECKPOINTS)
        require_viterbi_for_crf(self.model.span_crf, self.decode.method)
        if self.model.span_crf:
            _require(
                loss.span_assignment == "ordered",
                "model.span_crf=true needs loss.span_assignment=ordered "
                "(the matching costs are per-token cross-entropies, not the CRF's likelihood)",
            )
        for head in self.freeze.heads:
            own_lr = getattr(self.optim, f"{head}_head_lr")
            _require(
                own_lr is None,
                f"optim.{head}_head_lr={own_lr} has no effect: freeze.heads holds the {head} "
                "head, which does not train",
            )
        for name in self.loggers:
            _require(
                name in LOGGER_CHOICES,
                f"unknown logger {name!r}; use logger=csv, logger=wandb or logger=none",
            )

    @classmethod
    def from_config(cls, cfg: Any) -> TrainConfig:
        """The typed settings of a composed ``train`` config (an OmegaConf ``DictConfig``),
        every value checked; a bad one raises :class:`ConfigError` naming its key."""
        sections = {}
        for name, build in SECTIONS.items():
            values = _plain(cfg.get(name))
            if not isinstance(values, dict):
                raise ConfigError(f"the config has no {name} section")
            known = {f.name for f in fields(build)}
            unknown = sorted(set(values) - known)
            _require(not unknown, f"unknown {name} keys: {', '.join(unknown)}")
            try:
                sections[name] = build(**values)
            except ConfigError:
                raise
            except (TypeError, ValueError) as err:  # e.g. a required key missing
                raise ConfigError(f"{name}: {err}") from None
        return cls(
            **sections,
            seed=cfg.get("seed", 42),
            monitor=cfg.get("monitor"),
            objective=_plain(cfg.get("objective")),
            test_checkpoint=cfg.get("test_checkpoint", "best"),
            loggers=list(cfg.get("logger") or {}),
            max_epochs=(cfg.get("trainer") or {}).get("max_epochs"),
        )


Composed = TypeVar("Composed", bound="_FromConfig")


class _FromConfig:
    """``from_config`` for the dataclass of a whole entry point's config (eval, predict, mine)."""

    # keys of the composed config that belong to others (Hydra's paths, Lightning's trainer)
    UNTYPED: ClassVar[tuple[str, ...]] = ("paths", "hydra")

    @classmethod
    def from_config(cls: type[Composed], cfg: Any) -> Composed:
        """The typed settings of a composed config (an OmegaConf ``DictConfig``): types, unknown
        and missing keys checked by OmegaConf against the dataclass, then every range and
        choice by ``__post_init__``; a bad value raises :class:`ConfigError` naming its key."""
        from omegaconf import OmegaConf
        from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

        try:
            values = {key: _plain(cfg[key]) for key in cfg if key not in cls.UNTYPED}
            return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), values))
        except MissingMandatoryValue as err:
            raise ConfigError(_required_message(err.full_key)) from None
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None)
            message = str(err).splitlines()[0]  # the rest repeats the key and the class
            raise ConfigError(f"{key}: {message}" if key else message) from None


@dataclass
class DecodeOverride:
    """``decode.*`` of eval, predict and mine: ``null`` keeps what the model was trained with."""

    method: str | None = None
    force_relation: bool | None = None
    relation_order: str | None = None

    def __post_init__(self) -> None:
        # DecodeConfig's checks, of what is given: with no method, the model's own is known
        # only once it is loaded (and checked then)
        if self.method is not None:
            DecodeConfig(
                method=self.method,
                force_relation=bool(self.force_relation),
                relation_order=(
                    DEFAULT_RELATION_ORDER if self.relation_order is None else self.relation_order
                ),
            )
        elif self.relation_order is not None:
            _choice("decode", "relation_order", self.relation_order, RELATION_ORDERS)


@dataclass
class EvalConfig(_FromConfig):
    """``eval.py``: a checkpoint scored on a split of the data it was trained on."""

    UNTYPED: ClassVar[tuple[str, ...]] = ("paths", "hydra", "trainer", "callbacks")

    ckpt_path: str = "???"
    split: str = "test"  # test | val (the validation split carved at training, for choices)
    data: dict[str, Any] = field(default_factory=dict)  # data.* over the checkpoint's own
    decode: DecodeOverride = field(default_factory=DecodeOverride)
    matmul_precision: str | None = None  # None: as the checkpoint's run computed
    task_name: str = "eval"

    def __post_init__(self) -> None:
        _required("ckpt_path", self.ckpt_path)
        _choice("", "split", self.split, EVAL_SPLITS)
        if self.matmul_precision is not None:
            _choice("", "matmul_precision", self.matmul_precision, MATMUL_PRECISIONS)
        unknown = sorted(set(self.data) - {f.name for f in fields(DataConfig)})
        _require(not unknown, f"unknown data keys: {', '.join(unknown)}")


@dataclass
class InferenceConfig(_FromConfig):
    """What ``predict.py`` and ``mine.py`` share: the model, how it reads text, the progress bar."""

    model_dir: str | None = None  # an export directory or a Hub id (owner/name) of one
    ckpt_path: str | None = None  # or a checkpoint of train.py (last: the newest of the run)
    batch_size: int = 32
    max_length: int | None = None  # None: the window the model was trained with
    stride: int = 64  # overlap (subwords) of the windows of a sentence longer than max_length
    threshold: float = 0.5  # causal if probability >= threshold
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"
    progress_bar: bool = True
    decode: DecodeOverride = field(default_factory=DecodeOverride)

    def __post_init__(self) -> None:
        _require(
            bool(self.model_dir) != bool(self.ckpt_path),
            "give exactly one of model_dir=DIR (an export or a Hub id) or ckpt_path=PATH "
            f"(a checkpoint); got model_dir={self.model_dir!r}, ckpt_path={self.ckpt_path!r}",
        )
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _require(
            self.max_length is None or self.max_length >= 8,
            f"max_length must be >= 8 or null (the model's), got {self.max_length}",
        )
        _require(self.stride >= 0, f"stride must be >= 0, got {self.stride}")
        _require(0 <= self.threshold <= 1, f"threshold must be in [0, 1], got {self.threshold}")
        _choice("", "precision", self.precision, PREDICT_PRECISIONS)


@dataclass
class PredictConfig(InferenceConfig):
    """``predict.py``: one prediction per record of one input file."""

    input: str = "???"
    text_column: str = "text"  # of a .jsonl, .csv or .parquet input
    output: str | None = None  # None: <run dir>/predictions.jsonl
    output_format: str = "jsonl"
    task_name: str = "predict"

    def __post_init__(self) -> None:
        super().__post_init__()
        _required("input", self.input)
        _choice("", "output_format", self.output_format, PREDICTION_FORMATS)


@dataclass
class ReadSettings:
    """How ``mine.py`` (and ``predict.py``) turn records into documents."""

    text_column: str = "text"
    id_column: str | None = None  # None: ids are <file>:<row>
    txt_mode: str = "document"  # document: one per .txt file | line: one per line
    max_document_chars: int = 200_000

    def __post_init__(self) -> None:
        _choice("", "txt_mode", self.txt_mode, TXT_MODES)
        _require(
            self.max_document_chars >= 1,
            f"max_document_chars must be >= 1, got {self.max_document_chars}",
        )


@dataclass
class MineSettings:
    """What the miner keeps and how it writes."""

    output_format: str = "parquet"
    min_probability: float | None = None  # keep sentences with causal probability >= this

    def __post_init__(self) -> None:
        _choice("", "output_format", self.output_format, MINING_FORMATS)
        _require(
            self.min_probability is None or 0 <= self.min_probability <= 1,
            f"min_probability must be in [0, 1] or null, got {self.min_probability}",
        )


@dataclass
class RaySettings:
    """``ray.*``: ``workers`` actors with ``cpus_per_worker`` / ``gpus_per_worker`` each."""

    address: str | None = None  # None: start a local Ray instance; auto: join a cluster
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0  # e.g. 0.5 puts two actors on one GPU

    def __post_init__(self) -> None:
        _require(self.workers >= 1, f"ray.workers must be >= 1, got {self.workers}")
        _require(
            self.cpus_per_worker > 0 and self.gpus_per_worker >= 0,
            "ray.cpus_per_worker must be > 0 and ray.gpus_per_worker >= 0, got "
            f"{self.cpus_per_worker} and {self.gpus_per_worker}",
        )


@dataclass
class MineConfig(InferenceConfig):
    """``mine.py``: every document of a collection, mined into shards."""

    input: str = "???"  # a file, a folder or a glob
    output: str = "???"  # a folder
    txt_mode: str = "document"
    text_column: str = "text"
    id_column: str | None = None
    max_document_chars: int = 200_000  # longer documents are reported as errors, not mined
    shard_size: int = 1000  # records per shard: the unit of resuming and of Ray tasks
    output_format: str = "parquet"
    min_probability: float | None = None
    batch_size: int = 64
    launcher: str = "local"
    ray: RaySettings = field(default_factory=RaySettings)
    task_name: str = "mine"

    def __post_init__(self) -> None:
        super().__post_init__()
        _required("input", self.input)
        _required("output", self.output)
        _require(self.shard_size >= 1, f"shard_size must be >= 1, got {self.shard_size}")
        _choice("", "launcher", self.launcher, LAUNCHERS)
        _ = self.read, self.writing  # each checks its values as it is built

    @property
    def read(self) -> ReadSettings:
        """How records become documents."""
        return ReadSettings(
            self.text_column, self.id_column, self.txt_mode, self.max_document_chars
        )

    @property
    def writing(self) -> MineSettings:
        """What the miner keeps and how it writes."""
        return MineSettings(self.output_format, self.min_probability)


def register_schemas() -> None:
    """Put the section dataclasses in Hydra's ConfigStore as ``schema/<section>``, which
    ``conf/train.yaml`` lists first in its defaults: composition then type-checks every value
    (``data.batch_size=abc`` fails with its key named) and refuses unknown keys."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    store = ConfigStore.instance()
    for name, build in SECTIONS.items():
        node = OmegaConf.structured(build)
        if name == "model":
            node.name_or_path = "???"
        store.store(group="schema", name=name, node=node, package=name)
