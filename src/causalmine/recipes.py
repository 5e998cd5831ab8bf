"""The recipes behind ``train.py``, ``eval.py``, ``predict.py`` and ``mine.py``: config in, results out."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

from causalmine.checkpoints import check_resumable, load_module, resolve_ckpt_path
from causalmine.config import is_multirun, to_plain
from causalmine.data.datamodule import CausalDataModule
from causalmine.export import export as export_model
from causalmine.inference import Predictor
from causalmine.inference.bundle import load_bundle
from causalmine.inference.documents import input_files, plan_shards
from causalmine.inference.mining import (
    ShardMiner,
    finished,
    mine_locally,
    mining_progress,
    start_run,
    write_summary,
)
from causalmine.inference.mining_ray import mine_on_ray
from causalmine.lit import CausalLitModule
from causalmine.loggers import (
    build_loggers,
    finish_loggers,
    keep_csv_metrics,
    log_artifacts,
    log_run_config,
    print_config_tree,
)
from causalmine.model.backbone import BackboneSpec, load_tokenizer
from causalmine.precision import (
    evaluation_numerics,
    float32_matmul_precision,
    numeric_environment,
    trainer_precision,
)
from causalmine.prediction_files import read_texts, write_predictions
from causalmine.scoring.tables import print_results
from causalmine.settings import (
    DecodeConfig,
    EvalConfig,
    InferenceConfig,
    MineConfig,
    PredictConfig,
    TrainConfig,
    require_viterbi_for_crf,
)
from causalmine.training import training_callbacks

log = logging.getLogger(__name__)


def output_dir(cfg: DictConfig) -> Path:
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.paths.output_dir)


def build_datamodule(
    data_cfg: dict[str, Any], tokenizer, span_heads: int, seed: int = 0
) -> CausalDataModule:
    settings = {k: v for k, v in data_cfg.items() if not k.startswith("_")}
    return CausalDataModule(tokenizer=tokenizer, span_heads=span_heads, seed=seed, **settings)


def build_callbacks(
    cfg: DictConfig | None, has_logger: bool, progress_bar: bool = True
) -> list[Callback]:
    """Callbacks from config, leaving out those the run cannot use (no logger, no progress bar)."""
    callbacks: list[Callback] = []
    for name, settings in (cfg or {}).items():
        if settings is None:
            continue
        callback = instantiate(settings)
        if isinstance(callback, LearningRateMonitor) and not has_logger:
            log.info("callbacks.%s skipped: it needs a logger (logger=none)", name)
            continue
        if isinstance(callback, ProgressBar) and not progress_bar:
            continue
        callbacks.append(callback)
    return callbacks


def build_trainer(trainer_cfg: DictConfig, **kwargs: Any) -> L.Trainer:
    """The Lightning trainer of ``trainer_cfg``, its ``precision: auto`` resolved for this machine."""
    precision = trainer_precision(
        trainer_cfg.get("precision", "32-true"), trainer_cfg.get("accelerator", "auto")
    )
    return instantiate(trainer_cfg, precision=precision, **kwargs)


def write_metrics(path: Path, metrics: dict[str, float], extra: dict[str, Any]) -> None:
    payload = {**{k: metrics[k] for k in sorted(metrics)}, **extra}
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    log.info("metrics written to %s", path)


def environment_of(trainer: L.Trainer) -> dict[str, Any]:
    """:func:`~causalmine.precision.numeric_environment` of the precision and device ``trainer`` ran."""
    return numeric_environment(trainer.precision, type(trainer.accelerator).__name__)


def final_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {
        k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("val/", "test/"))
    }


def resumes_in(out_dir: Path, resume_from: str | None) -> bool:
    """Whether a run resumes from a checkpoint of its own directory (not a sibling run's)."""
    return resume_from is not None and out_dir.resolve() in Path(resume_from).resolve().parents


def resume_checkpoint(ckpt_path: str | None, out_dir: Path) -> str | None:
    """The checkpoint a training run resumes from (``None``: a fresh run), checked to be whole."""
    resume_from = resolve_ckpt_path(ckpt_path, out_dir, search_siblings=not is_multirun())
    if resume_from is None:
        return None
    check_resumable(resume_from)
    if not resumes_in(out_dir, resume_from):
        log.warning(
            "resuming from another run's checkpoint %s: the best-checkpoint record and the logs "
            "start afresh in %s; for an exact resume rerun with hydra.run.dir=<that run>",
            resume_from,
            out_dir,
        )
    return resume_from


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the unified model, test its best checkpoint, write ``metrics.json``; return the metrics."""
    settings = TrainConfig.from_config(cfg)  # every value checked before anything loads
    out_dir = output_dir(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:  # DDP's other ranks say nothing
        print_config_tree(cfg, out_dir / "config_tree.log", show=cfg.get("print_config", True))
    L.seed_everything(settings.seed, workers=True)
    torch.set_float32_matmul_precision(cfg.get("matmul_precision", "high"))

    model = settings.model
    tokenizer = load_tokenizer(BackboneSpec(model.name_or_path, model.tiny))
    data_cfg = settings.data.to_dict()
    datamodule = build_datamodule(data_cfg, tokenizer, model.span_heads, settings.seed)
    module = CausalLitModule(
        network=replace(model, vocab_size=len(tokenizer)).to_dict(),
        loss=asdict(settings.loss),
        optim=asdict(settings.optim),
        decode=asdict(settings.decode),
        data_config=data_cfg,
        freeze=asdict(settings.freeze),
        corpora=datamodule.corpus_names,
    )
    resume_from = resume_checkpoint(cfg.get("ckpt_path"), out_dir)
    loggers = build_loggers(cfg.get("logger"), resuming=resumes_in(out_dir, resume_from))
    if resume_from is not None:
        keep_csv_metrics(loggers)
    callbacks = training_callbacks() + build_callbacks(
        cfg.get("callbacks"), bool(loggers), cfg.trainer.get("enable_progress_bar", True)
    )
    trainer = build_trainer(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    log_run_config(loggers, to_plain(cfg))
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        metrics = final_metrics(trainer)
        if not any(k.startswith("val/") for k in metrics) and trainer.limit_val_batches != 0:
            # training stopped (max_steps) before its first validation: the objective and the
            # report need validation metrics, so score the final weights once
            trainer.validate(module, datamodule=datamodule, verbose=False)
            metrics = final_metrics(trainer)
        checkpoint = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
        best = checkpoint.best_model_path if checkpoint is not None else ""
        if cfg.get("test", True):
            # the best checkpoint (or, with test_checkpoint=last or when none was saved, the
            # final weights)
            use_best = settings.test_checkpoint == "best" and best
            trainer.test(
                module,
                datamodule=datamodule,
                ckpt_path=best if use_best else None,
                weights_only=True,
            )
            metrics.update(
                {k: v for k, v in final_metrics(trainer).items() if k.startswith("test/")}
            )
            name = Path(best).name if use_best else "final weights"
            if trainer.is_global_zero:
                print_results(
                    metrics, "test", f"test split ({', '.join(datamodule.corpus_names)}), {name}"
                )
        extra = {
            "parameters": module.parameter_counts,
            "best_checkpoint": best,
            "best_score": float(checkpoint.best_model_score)
            if checkpoint is not None and checkpoint.best_model_score is not None
            else None,
            "monitor": cfg.monitor,
            "data": {
                "reports": [r.as_dict() for r in datamodule.reports],
                "splits": datamodule.stats,
            },
            "environment": environment_of(trainer),
        }
        if trainer.is_global_zero:  # under DDP every rank holds the same, synced metrics
            write_metrics(out_dir / "metrics.json", metrics, extra)
            # the best model as a self-contained directory with its card (after metrics.json,
            # whose test figures the card shows)
            model_dir = (
                export_model(best, out_dir / "model") if best and cfg.get("export") else None
            )
            if any(isinstance(lg, WandbLogger) for lg in loggers):
                files = {"metrics": out_dir / "metrics.json", "config": out_dir / "config_tree.log"}
                if model_dir is not None:
                    files["model"] = model_dir
                log_artifacts(loggers, cfg.get("logger"), files)
    finally:
        finish_loggers(loggers)
    return metrics


def checkpoint_datamodule(
    module: CausalLitModule, overrides: dict[str, Any], data_dir: str
) -> CausalDataModule:
    """The data a checkpoint was trained on (its ``data_config``, with ``overrides``), read from
    ``data_dir`` when the checkpoint's ``data.root`` is not on this machine."""
    hparams = module.hparams
    data_cfg = {**(hparams.get("data_config") or {}), **overrides}
    if "root" not in overrides and not Path(str(data_cfg.get("root"))).is_dir():
        log.info(
            "the checkpoint's data.root %s is not here; using %s", data_cfg.get("root"), data_dir
        )
        data_cfg["root"] = data_dir
    spec = BackboneSpec(hparams["network"]["name_or_path"], hparams["network"].get("tiny"))
    return build_datamodule(data_cfg, load_tokenizer(spec), hparams["network"]["span_heads"])


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Score a checkpoint on the test split (or ``split=val``, the validation split carved at
    training) of the data it was trained on (or ``data.*`` overrides), decoding spans with the
    checkpoint's ``decode.method`` unless ``decode.method`` says otherwise."""
    settings = EvalConfig.from_config(cfg)  # every value checked before anything loads
    stage = settings.split
    out_dir = output_dir(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = resolve_ckpt_path(settings.ckpt_path, out_dir)
    module = load_module(ckpt_path)
    if settings.decode.method is not None:
        module.decode_method = settings.decode.method
    if settings.decode.force_relation is not None:
        module.force_relation = settings.decode.force_relation
    if settings.decode.relation_order is not None:
        module.relation_order = settings.decode.relation_order
    DecodeConfig(
        method=module.decode_method,
        force_relation=module.force_relation,
        relation_order=module.relation_order,
    )
    require_viterbi_for_crf(module.network.config.span_crf, module.decode_method, str(ckpt_path))
    datamodule = checkpoint_datamodule(module, settings.data, cfg.paths.data_dir)
    if datamodule.corpus_names != module.hparams.get("corpora"):
        module.score_by_corpus(datamodule.corpus_names)  # other data than it was trained on
    callbacks = build_callbacks(
        cfg.get("callbacks"),
        has_logger=False,
        progress_bar=cfg.trainer.get("enable_progress_bar", True),
    )
    precision, matmul_precision = evaluation_numerics(
        cfg.trainer.get("precision"),
        settings.matmul_precision,
        module.trained_numerics,
        cfg.trainer.get("accelerator", "auto"),
    )
    trainer_cfg = cfg.trainer.copy()
    trainer_cfg.precision = precision
    trainer = build_trainer(trainer_cfg, logger=False, callbacks=callbacks)
    with float32_matmul_precision(matmul_precision):
        (trainer.test if stage == "test" else trainer.validate)(module, datamodule=datamodule)
        environment = environment_of(trainer)
    metrics = {k: v for k, v in final_metrics(trainer).items() if k.startswith(f"{stage}/")}
    name = "test" if stage == "test" else "validation"
    print_results(
        metrics,
        stage,
        f"{name} split ({', '.join(datamodule.corpus_names)}), {Path(ckpt_path).name}, "
        f"{module.decode_method} decoding",
    )
    write_metrics(
        out_dir / "metrics.json",
        metrics,
        {
            "checkpoint": str(ckpt_path),
            "split": stage,
            "decode_method": module.decode_method,
            "force_relation": module.force_relation,
            "relation_order": module.relation_order,
            "data": {"splits": datamodule.stats},
            "environment": environment,
        },
    )
    return metrics


def load_predictor(settings: InferenceConfig, run_dir: Path | None = None) -> Predictor:
    """A predictor from ``model_dir`` (an export directory or a Hub id of one) or ``ckpt_path``
    (a training checkpoint; ``last`` is looked for under ``run_dir``), with the settings'
    prediction options over the model's own."""
    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    options: dict[str, Any] = {
        "batch_size": settings.batch_size,
        "stride": settings.stride,
        "threshold": settings.threshold,
        "precision": settings.precision,
    }
    if settings.max_length:
        options["max_length"] = settings.max_length
    if settings.decode.method is not None:
        options["decode_method"] = settings.decode.method
    if settings.decode.force_relation is not None:
        options["force_relation"] = settings.decode.force_relation
    if settings.decode.relation_order is not None:
        options["relation_order"] = settings.decode.relation_order
    source = settings.model_dir or resolve_ckpt_path(settings.ckpt_path, run_dir or Path.cwd())
    return load_bundle(source).predictor(device, **options)


def predict(cfg: DictConfig) -> Path:
    """Predict every line of ``cfg.input``; write JSONL (one line per input line) and return its path."""
    from rich.progress import track

    settings = PredictConfig.from_config(cfg)  # every value checked before anything loads
    texts = read_texts(settings.input, settings.text_column)
    predictor = load_predictor(settings, output_dir(cfg))
    out_path = Path(settings.output or output_dir(cfg) / "predictions.jsonl")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    predictions = track(
        predictor.predict(texts),
        total=len(texts),
        description="predicting",
        disable=not settings.progress_bar,
    )
    written = write_predictions(out_path, predictions, settings.output_format)
    if written != len(texts):
        raise RuntimeError(f"wrote {written} predictions for {len(texts)} input lines")
    log.info("%d predictions written to %s", written, out_path)
    print(out_path)
    return out_path


def shard_miner(settings: MineConfig) -> ShardMiner:
    """A :class:`ShardMiner` with the model of a mine config (built once per process or actor)."""
    return ShardMiner(load_predictor(settings), settings.output, settings.read, settings.writing)


def mine(cfg: DictConfig) -> dict[str, Any]:
    """Mine every document of ``cfg.input`` into shards under ``cfg.output``; resume a run
    there that was stopped; return the summary (also ``_summary.json``)."""
    settings = MineConfig.from_config(cfg)  # every value checked before any file is read
    if settings.ckpt_path:  # resolved once, here: Ray's actors get the file itself
        settings = replace(
            settings, ckpt_path=resolve_ckpt_path(settings.ckpt_path, output_dir(cfg))
        )
    started = time.perf_counter()
    # the local model is loaded before the output folder is claimed: one that cannot load (or
    # decode as asked) leaves nothing behind
    miner = shard_miner(settings) if settings.launcher == "local" else None
    root, files = input_files(settings.input)
    specs = plan_shards(root, files, settings.read, settings.shard_size)
    output = Path(settings.output)
    start_run(output, mining_fingerprint(settings, files, root))
    todo = [spec for spec in specs if finished(output, spec) is None]
    total = sum(spec.count for spec in specs)
    done = total - sum(spec.count for spec in todo)
    log.info(
        "%d records in %d files: %d shards, %d already mined",
        total,
        len(files),
        len(specs),
        len(specs) - len(todo),
    )
    with mining_progress(total, done, enabled=settings.progress_bar) as advance:
        if settings.launcher == "ray":
            for manifest in mine_on_ray(partial(shard_miner, settings), todo, settings.ray):
                advance(manifest["records"], manifest["sentences"])
        else:
            for _ in mine_locally(miner, todo, advance):
                pass
    summary = write_summary(output, specs, time.perf_counter() - started)
    print(
        f"documents {summary['records']:,} = mined {summary['documents']:,} + errors "
        f"{summary['errored']:,} | sentences {summary['sentences']:,} | causal "
        f"{summary['causal_sentences']:,} | relations {summary['relations']:,} | rows written "
        f"{summary['rows']:,} → {output}"
    )
    if summary["errored"]:
        print(f"{summary['errored']:,} records were not documents; why: {output / '_errors.jsonl'}")
    return summary


def mining_fingerprint(settings: MineConfig, files: list[Path], root: Path) -> dict[str, Any]:
    """What the output of a mining run depends on: the input files and every setting that
    changes rows (not the launcher, device or batch size)."""
    keys = (
        "model_dir", "ckpt_path", "text_column", "id_column", "txt_mode", "max_document_chars",
        "shard_size", "output_format", "min_probability", "threshold", "max_length", "stride",
        "precision",
    )  # fmt: skip
    model = settings.model_dir or settings.ckpt_path
    return {
        **{key: getattr(settings, key) for key in keys},
        "model": str(Path(model).resolve()) if model else None,
        # overrides left at null (the model's own) are left out, so that a run started before a
        # decode key existed still resumes
        "decode": {k: v for k, v in asdict(settings.decode).items() if v is not None},
        "files": [
            [p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns] for p in files
        ],
    }
