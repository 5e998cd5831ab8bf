"""Quality: is one unified model as good as separate per-task models on CNC V2?

    python experiments/bench_quality.py                                      # all systems, seeds 1 2 3
    python experiments/bench_quality.py --systems unified hf_seq --seeds 1  # a subset

Systems, all on the same backbone (MiniLM), training split (CNC train minus our validation
documents), epochs, batch size and seeds, and all scored on CNC dev by causalmine's scorers,
each from its final weights (no checkpoint selection, as the Hugging Face scripts do). Ours
train at ``train.py``'s own learning rates; ``--lr`` is the Hugging Face baselines' (before
RESULTS §8s adopted lower rates, ``train.py``'s backbone rate was that default too, 1e-4):

- ``unified``: our network trained jointly on sequence and span labels, at train.py's defaults;
- ``seq_only`` / ``span_only``: the same network with the other task's loss weight at 0 (and
  no span warm-up for ``seq_only``);
- ``hf_seq``: ``AutoModelForSequenceClassification`` (the UniCausal / CNC sequence baseline);
- ``hf_token``: ``AutoModelForTokenClassification`` trained one relation per example on
  Cause/Effect BIO (the CNC span baseline); it predicts one relation per sentence and has no
  signals, so it is scored on Cause/Effect only (column ``span C/E F1``).

``--summarize`` also takes the records of ``bench_protocol.py`` runs of a lever that were tested
on their final weights (``test_checkpoint=last``): each becomes system ``unified[<config>]``
(``span_only[<config>]`` / ``seq_only[<config>]`` when the config weighs a task 0), paired by
seed with the per-task systems, with ``unified``, and with the per-task systems trained under
the same lever. Both scripts train through the same ``train.py`` config, so a default run of
either is the same run (RESULTS §8c). Those records hold no Cause/Effect figure (``span C/E
F1``, ``hf_token``'s column); ``--span-ce`` scores each run's final weights for it, from the
``last.ckpt`` its run directory still holds.

Interrupted, the same command picks up where it stopped: jobs recorded in ``<out>.runs.jsonl``
with the same settings (epochs, lr, batch size, model, limit) are not run again, and a job of
ours that was killed resumes from its ``last.ckpt`` (exact resume).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from bench_protocol import joined_curve, left_by, read_runs, without_overrides

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

SYSTEMS = ("unified", "seq_only", "span_only", "hf_seq", "hf_token")


def ce_only(relations: list) -> list:
    """The same relations without their signal spans (to score Cause/Effect only)."""
    from causalmine.schema import Relation

    return [Relation.from_spans([s for s in r.spans if s.kind != "S"]) for r in relations]


def span_ce_f1(examples: list, predictions: list) -> float:
    """Cause/Effect span F1 (pooled counts, signals left out) of predictions for ``examples``."""
    from causalmine.scoring.span_scoring import score_corpus

    golds = [ce_only(e.relations) for e in examples]
    ce = score_corpus([e.words for e in examples], golds, [ce_only(p) for p in predictions])
    return ce["span_f1_pooled"]


def seq_scores(labels: list[int], predictions: list[int]) -> dict[str, float]:
    import torch
    from torchmetrics.functional.classification import (
        binary_accuracy,
        binary_f1_score,
        binary_matthews_corrcoef,
    )

    p, t = torch.tensor(predictions), torch.tensor(labels)
    return {
        "seq_f1": float(binary_f1_score(p, t)),
        "seq_accuracy": float(binary_accuracy(p, t)),
        "seq_mcc": float(binary_matthews_corrcoef(p, t)),
    }


# our systems: train.py's defaults and their per-task ablations (a sequence-only run has no span
# warm-up)
OUR_SYSTEMS = {
    "unified": [],
    "seq_only": ["span_weight=0", "loss.seq_start_epoch=0"],
    "span_only": ["alpha=0"],
}


def our_config(system: str, seed: int, args: argparse.Namespace, out_dir: Path):
    """The composed ``train.py`` config of one of our systems (the real Hydra config)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from causalmine.config import register_with_hydra

    register_with_hydra()
    overrides = [
        f"seed={seed}",
        f"trainer.max_epochs={args.epochs}",
        f"data.batch_size={args.batch_size}",
        f"data.root={args.data_root}",
        f"trainer.accelerator={args.accelerator}",
        "trainer.enable_progress_bar=false",
        "logger=csv",  # its validation rows are the run's learning curve
        "test_checkpoint=last",
        *OUR_SYSTEMS[system],
        *([f"data.limit_examples={args.limit}"] if args.limit else []),
        # an interrupted job continues exactly where it stopped (train.py's exact resume; a
        # checkpoint trained under other loss or optim values is refused)
        *(["ckpt_path=last"] if (out_dir / "checkpoints" / "last.ckpt").is_file() else []),
    ]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out_dir)
    return cfg


def our_recipe(cfg) -> dict:
    """What one of our systems trains with beyond the shared budget: the resolved ``loss`` and
    ``optim`` sections (:func:`canonical_recipe`). Recorded with each run, so that a rerun does
    not reuse a run made under other defaults (RESULTS §8s changed them)."""
    from omegaconf import OmegaConf

    return canonical_recipe(
        {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("loss", "optim")}
    )


def canonical_recipe(recipe: dict | None) -> dict:
    """``recipe`` (or a job holding one) with its ``loss`` and ``optim`` sections as today's
    dataclasses spell them (``settings.saved_section``), in JSON form, so that a key added since
    it was recorded does not alone make it another recipe. A section that no longer builds (a
    value since refused) stays as recorded: no recipe of today's equals it, and a rerun trains
    that run again rather than stopping."""
    from causalmine.settings import LossWeights, OptimConfig, saved_section

    canonical = dict(recipe or {})
    for section, build in (("loss", LossWeights), ("optim", OptimConfig)):
        if canonical.get(section) is not None:
            with suppress(ValueError, TypeError):  # ConfigError is a ValueError
                canonical[section] = saved_section(build, canonical[section])
    return json.loads(json.dumps(canonical))


def reusable(
    runs: list[dict], settings: dict[str, Any], recipes: dict[str, dict]
) -> dict[tuple[str, int], dict]:
    """The recorded runs a rerun keeps, by (system, seed): same settings, and for our systems
    the same recipe (:func:`our_recipe`)."""
    return {
        (r["system"], r["seed"]): r
        for r in runs
        if all(r.get(k) == v for k, v in settings.items())
        and (
            r["system"] not in recipes
            or ("recipe" in r and canonical_recipe(r["recipe"]) == recipes[r["system"]])
        )
    }


def same_job(out_dir: Path, job: dict) -> bool:
    """Whether ``out_dir`` was left by this very job (its settings and recipe, written to
    ``bench_quality_job.json``), so that its ``last.ckpt`` may be resumed. A directory left by
    another job (another budget, or defaults) is cleared: its checkpoint is not this job's."""
    marker = out_dir / "bench_quality_job.json"
    same = marker.is_file() and canonical_recipe(json.loads(marker.read_text())) == (
        canonical_recipe(job)
    )
    if out_dir.exists() and not same:
        print(f"{out_dir}: left by another job; starting afresh", flush=True)
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(job))
    return same


def run_ours(system: str, seed: int, args: argparse.Namespace, out_dir: Path) -> dict[str, float]:
    """Our pipeline through the real Hydra config; final weights scored on CNC dev."""
    from causalmine.recipes import train

    cfg = our_config(system, seed, args, out_dir)
    if not same_job(
        out_dir, {"settings": {k: getattr(args, k) for k in SETTINGS}, **our_recipe(cfg)}
    ):
        cfg = our_config(system, seed, args, out_dir)  # afresh: nothing left to resume
    metrics = train(cfg)
    result = {k: metrics[f"test/{k}"] for k in trained_columns(system)}
    result["recipe"] = our_recipe(cfg)
    result["val_curve"] = joined_curve(out_dir / "csv", OUR_CURVE, args.epochs)
    if system != "seq_only":
        from causalmine.checkpoints import load_module

        result |= cause_effect_figures(
            load_module(next(out_dir.glob("checkpoints/last*.ckpt"))), args
        )
    return result


def trained_columns(system: str) -> tuple[str, ...]:
    """The test figures of our ``system`` (``unified``, ``seq_only``, ``span_only``): an
    ablation's switched-off head is untrained, and its figures mean nothing."""
    seq = ("seq_f1", "seq_accuracy", "seq_mcc") if system != "span_only" else ()
    return seq + (("span_f1", "span_f1_pooled", "span_f1_2023") if system != "seq_only" else ())


# per epoch of our runs: the validation metrics the curves show (one per task, as trained)
OUR_CURVE = ("val/seq_f1", "val/span_f1", "val/span_f1_pooled")


def cause_effect_figures(
    module, args: argparse.Namespace, source: str = "the model"
) -> dict[str, Any]:
    """``span_ce_f1`` of a trained module and ``span_ce_decoding``, the decoding it was read
    with (figures recorded without it, before 2026-11-30, were read with ``argmax``): the
    module's own unless ``args.span_ce`` names another, which a CRF model refuses."""
    from causalmine.settings import require_viterbi_for_crf

    if args.span_ce not in (None, "model"):
        require_viterbi_for_crf(module.network.config.span_crf, args.span_ce, source)
        module.decode_method = args.span_ce
    return {
        "span_ce_f1": ce_f1_of_checkpoint(module, args),
        "span_ce_decoding": module.decode_method,
    }


def ce_decoding(run: dict) -> str:
    """How a run's ``span_ce_f1`` was decoded: ``hf_token`` by its own per-word argmax; ours as
    recorded, and ``argmax`` for records that predate ``span_ce_decoding``."""
    return "hf_token" if run["system"] == "hf_token" else run.get("span_ce_decoding", "argmax")


def ce_f1_of_checkpoint(module, args: argparse.Namespace) -> float:
    """Cause/Effect-only span F1 of a trained module on CNC dev (comparable with hf_token),
    decoded as the module decodes (its ``decode.*`` settings: Viterbi for today's models)."""
    from causalmine.data.corpora import load_cnc
    from causalmine.inference.bundle import bundle_of_module

    predictor = bundle_of_module(module).predictor(args.device)
    test = [e for e in load_cnc(args.data_root, download=False).test if e.relations is not None][
        : args.limit or None
    ]
    predicted = [p.relations for p in predictor.predict([e.text for e in test])]
    return span_ce_f1(test, predicted)


def protocol_cause_effect(record: dict, args: argparse.Namespace) -> dict[str, Any]:
    """Cause/Effect F1 (the column ``hf_token`` is compared on) of a ``bench_protocol.py`` run's
    final weights, the ``last.ckpt`` in its run directory: its record does not hold the figure."""
    from causalmine.checkpoints import load_module
    from causalmine.settings import ConfigError

    run = f"{record['config']} seed {record['seed']}"
    checkpoint = Path(record["run_dir"]) / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        raise SystemExit(
            f"{run}: {checkpoint} not found; --span-ce scores the run's final weights, so its run "
            "directory must still hold them"
        )
    # the directory must hold the record's run id; a record made before run ids existed, a
    # directory without a marker (every run since writes one, so it was not reused)
    left = (left_by(Path(record["run_dir"])) or {}).get("run_id")
    if left != record.get("run_id"):
        raise SystemExit(
            f"{run}: {record['run_dir']} now holds the weights of another run (run id "
            f"{left or 'none'}; this record's: {record.get('run_id') or 'none'}): the directory "
            "was reused since; rerun the job, or score it where its weights were kept"
        )
    try:
        return cause_effect_figures(
            load_module(checkpoint), args, f"--span-ce {args.span_ce}: {run}"
        )
    except ConfigError as err:  # a CRF model read by argmax: stop the summary, naming the run
        raise SystemExit(str(err)) from None


def cnc_split(args: argparse.Namespace) -> tuple[list, list, list]:
    """The training examples our pipeline uses (train minus its validation documents and minus
    the sentences that also occur in dev, as ``data.drop_leaked`` does), those validation
    documents' examples (for the learning curves) and CNC dev."""
    from causalmine.data.corpora import load_cnc
    from causalmine.data.leakage import leaked
    from causalmine.data.splits import split_for_validation

    corpus = load_cnc(args.data_root, download=False)
    train, validation, _ = split_for_validation(corpus.train, 0.1, 1234, "cnc")
    dropped = {id(e) for e in leaked(train, corpus.test)}
    train = [e for e in train if id(e) not in dropped]
    limit = args.limit or None
    return train[:limit], validation[:limit], corpus.test[:limit]


def hf_backbone(args: argparse.Namespace) -> str:
    """The local path (bundled MiniLM) or hub name of the baselines' backbone."""
    from causalmine.model.backbone import resolve_name_or_path

    return resolve_name_or_path(args.model)


def hf_tokenizer(args: argparse.Namespace):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(hf_backbone(args))


def train_hf(
    model,
    rows: list[dict],
    collator,
    seed: int,
    args: argparse.Namespace,
    out_dir: Path,
    validate: Callable[[], dict[str, float]],
) -> tuple[Any, list[dict[str, float]]]:
    """Fine-tune a Hugging Face model with ``Trainer`` as the HF example scripts do; at the end
    of every epoch ``validate()`` scores it on the validation split (the learning curve)."""
    from transformers import Trainer, TrainerCallback

    curve: list[dict[str, float]] = []

    class LearningCurve(TrainerCallback):
        def on_epoch_end(self, _args, state, _control, **_kwargs):
            model.eval()
            curve.append({"epoch": round(state.epoch) - 1} | validate())
            model.train()

    trainer = Trainer(
        model=model,
        args=hf_training_args(out_dir, seed, args),
        train_dataset=rows,
        data_collator=collator,
        callbacks=[LearningCurve()],
    )
    trainer.train()
    return trainer, curve


def hf_training_args(out_dir: Path, seed: int, args: argparse.Namespace):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out_dir),
        num_train_epochs=args.epochs,
        learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64,
        warmup_steps=0.1,  # a float is a ratio of the training steps (transformers 5)
        weight_decay=0.01,
        max_grad_norm=1.0,
        seed=seed,
        save_strategy="no",
        report_to=[],
        logging_steps=50,
        disable_tqdm=True,
        use_cpu=args.accelerator == "cpu",
    )


def run_hf_seq(seed: int, args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

    path, tokenizer = hf_backbone(args), hf_tokenizer(args)
    train, validation, test = cnc_split(args)
    collator = DataCollatorWithPadding(tokenizer)

    def encode(examples: list) -> list[dict]:
        return [
            {**tokenizer(e.text, truncation=True, max_length=256), "labels": e.seq_label}
            for e in examples
            if e.seq_label is not None
        ]

    def scores(rows: list[dict]) -> dict[str, float]:
        predictions = []
        with torch.inference_mode():
            for i in range(0, len(rows), 64):
                batch = collator(rows[i : i + 64]).to(model.device)
                predictions += model(**batch).logits.argmax(-1).tolist()
        return seq_scores([r["labels"] for r in rows], predictions)

    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=2, dtype=torch.float32
    )
    validation_rows = encode(validation)
    _, curve = train_hf(
        model,
        encode(train),
        collator,
        seed,
        args,
        out_dir,
        validate=lambda: {"val/seq_f1": scores(validation_rows)["seq_f1"]},
    )
    model.eval()
    return scores(encode(test)) | {"val_curve": curve}


def run_hf_token(seed: int, args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification

    from causalmine.data.encoding import first_subword_positions
    from causalmine.data.tags import relation_from_bio
    from causalmine.schema import CE_LABEL_TO_ID, CE_LABELS

    path, tokenizer = hf_backbone(args), hf_tokenizer(args)
    train, validation, test = cnc_split(args)

    def encode(words: list[str], tags: list[str] | None) -> dict:
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=256)
        positions = first_subword_positions(enc.word_ids(), len(words))
        labels = [-100] * len(enc["input_ids"])
        for w, p in enumerate(positions):
            if p >= 0 and tags is not None:
                labels[p] = CE_LABEL_TO_ID[tags[w]]
        return {**enc, "labels": labels, "positions": positions}

    def span_f1(examples: list) -> float:
        """One relation per sentence, decoded from the BIO tags of its first subwords."""
        scored = [e for e in examples if e.relations is not None]
        predictions = []
        with torch.inference_mode():
            for e in scored:
                enc = encode(e.words, None)
                ids = torch.tensor([enc["input_ids"]], device=model.device)
                logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
                labels = logits.argmax(-1)[0].tolist()
                tags = [CE_LABELS[labels[p]] if p >= 0 else "O" for p in enc["positions"]]
                relation = relation_from_bio(tags, ["O"] * len(tags))
                predictions.append([relation] if relation.spans else [])
        return span_ce_f1(scored, predictions)

    # one training example per gold relation (all of them), Cause/Effect layer only
    rows = [
        encode(e.words, r.ce_tags(len(e.words))) for e in train if e.relations for r in e.relations
    ]
    model = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(CE_LABELS), dtype=torch.float32
    )
    strip = [{k: v for k, v in r.items() if k != "positions"} for r in rows]
    _, curve = train_hf(
        model,
        strip,
        DataCollatorForTokenClassification(tokenizer),
        seed,
        args,
        out_dir,
        validate=lambda: {"val/span_ce_f1": span_f1(validation)},
    )
    model.eval()
    return {"span_ce_f1": span_f1(test), "val_curve": curve}


# what makes two runs comparable; a resumed benchmark reuses only runs with the same settings
SETTINGS = ("epochs", "lr", "batch_size", "model", "limit")


# the flags' defaults; batch size and model are train.py's own (a bench_protocol.py record
# leaves them out unless overridden), so a default run of either script is the same run. lr is
# the Hugging Face baselines' rate, which every recorded run shares (ours trained at train.py's
# backbone rate, 1e-4 until RESULTS §8s; an imported record's own rates are part of its lever)
DEFAULTS = {
    "epochs": 10,  # the protocol's budget (RESULTS §8b); the default warm-up needs more than 3
    "lr": 1e-4,
    "batch_size": 8,
    "model": "sentence-transformers/all-MiniLM-L6-v2",
    "limit": None,
}
# a bench_protocol.py record's overrides that set one of SETTINGS, and their types: the
# comparison's budget, which every system shares
PROTOCOL_SETTINGS = {
    "trainer.max_epochs": ("epochs", int),
    "data.batch_size": ("batch_size", int),
}
# the overrides that define a lever (the loss, the pooling, CRF span heads, the network's own
# learning rates, a callbacks set such as weight averaging), allowed in an imported
# bench_protocol record. A lever's learning rates are its own: the record keeps the budget's
# ``lr`` setting (the baselines'), its lever says the rest
LEVER_KEYS = (
    "callbacks",
    "optim.lr",
    "optim.head_lr",
    "span_weight",
    "alpha",
    "loss.weighting",
    "loss.span_weight",
    "loss.alpha",
    "loss.span_assignment",
    "loss.seq_start_epoch",
    "loss.gradient_surgery",
    "loss.seq_label_smoothing",
    "pooling",
    "model.pooling",
    "model.span_crf",
)


def system_order(run: dict) -> tuple:
    """Runs by seed, then system as in SYSTEMS, a lever ``unified[…]`` after ``unified``."""
    return (run["seed"], SYSTEMS.index(run["system"].split("[")[0]), run["system"])


# the loss weights that switch a task off when 0
SWITCHES = {"seq": ("alpha", "loss.alpha"), "span": ("span_weight", "loss.span_weight")}
# lever overrides that act on one task alone, or between the two: a per-task system has none
# of those of the task it switches off, nor those between tasks (gradient surgery has a single
# task's gradients to project; a span warm-up orders two tasks, and a sequence-only run under
# one would train nothing in its first epochs, which settings refuse)
JOINT_LEVERS = ("loss.gradient_surgery", "loss.seq_start_epoch")
TASK_ONLY_LEVERS = {
    "seq": ("loss.seq_label_smoothing", *JOINT_LEVERS),
    "span": ("loss.span_assignment", "model.span_crf", *JOINT_LEVERS),
}
PER_TASK_OFF = {"span_only": "seq", "seq_only": "span"}


def per_task_lever(lever: str, system: str) -> str:
    """A unified lever as per-task ``system`` (``span_only`` or ``seq_only``) carries it:
    without the overrides that act only on the task it switches off or between tasks, nor that
    task's loss weight (its switch)."""
    off = PER_TASK_OFF[system]
    drop = (*TASK_ONLY_LEVERS[off], *SWITCHES[off])
    return ",".join(part for part in lever.split(",") if part and part.split("=")[0] not in drop)


def protocol_system(name: str, overrides: dict[str, str]) -> tuple[str, str]:
    """Which of our systems a run's loss weights make it (a task weighted 0 is switched off),
    and its lever: the other loss overrides, e.g. ``loss.span_assignment=matched``, less those
    that act only on a task it switches off or between tasks (``loss.seq_start_epoch=0`` in a
    sequence-only run is no lever)."""
    off = {
        task
        for task, keys in SWITCHES.items()
        if any(float(overrides[k]) == 0 for k in keys if k in overrides)
    }
    if off == {"seq", "span"}:
        raise SystemExit(f"{name}: trains neither sequences nor spans; not comparable here")
    system = "span_only" if "seq" in off else "seq_only" if "span" in off else "unified"
    switches = {k for task in off for k in (*SWITCHES[task], *TASK_ONLY_LEVERS[task])}
    lever = ",".join(
        f"{k}={v}" for k, v in sorted(overrides.items()) if k in LEVER_KEYS and k not in switches
    )
    return system, lever


def from_protocol(record: dict, equivalent: list[str] = ()) -> dict:
    """A ``bench_protocol.py`` record as a run of system ``<system>[<config>]`` (``unified``, or
    ``span_only`` / ``seq_only`` when its overrides switch a task off); it must have been
    tested on its final weights, as every system here is. ``equivalent`` overrides are left
    out (``--equivalent``)."""
    (record,) = without_overrides([record], list(equivalent))
    overrides = dict(o.split("=", 1) for o in record["overrides"])
    name = f"{record['config']} seed {record['seed']}"
    if record.get("returncode") != 0:
        raise SystemExit(f"{name}: the bench_protocol run failed")
    if overrides.get("test_checkpoint") != "last":
        raise SystemExit(
            f"{name}: tested on its best checkpoint; only runs with test_checkpoint=last "
            "(final weights) compare with these systems"
        )
    unknown = set(overrides) - {*PROTOCOL_SETTINGS, "test_checkpoint", *LEVER_KEYS}
    if unknown:
        raise SystemExit(f"{name}: overrides {sorted(unknown)} are not comparable here")
    if "trainer.max_epochs" not in overrides:
        raise SystemExit(f"{name}: no trainer.max_epochs override; its budget is not recorded")
    settings = dict(DEFAULTS)
    for key, (setting, kind) in PROTOCOL_SETTINGS.items():
        if key in overrides:
            settings[setting] = kind(overrides[key])
    system, lever = protocol_system(name, overrides)
    run = {"system": f"{system}[{record['config']}]", "seed": record["seed"], "lever": lever}
    run |= {"seconds": record.get("seconds_all_attempts", record["seconds"]), **settings}
    run |= {k: record[f"test/{k}"] for k in trained_columns(system) if f"test/{k}" in record}
    run["val_curve"] = [
        {k: point[k] for k in ("epoch", *OUR_CURVE) if k in point} for point in record["val_curve"]
    ]
    return run


def runs_to_summarize(
    paths: list[str], equivalent: list[str], score_with: argparse.Namespace | None = None
) -> list[dict]:
    """The runs recorded in ``paths``, ``bench_protocol.py`` records as systems
    (:func:`from_protocol`); with ``score_with`` (the data, device and ``span_ce`` settings),
    those that trained spans also get ``span_ce_f1`` from their final weights
    (:func:`protocol_cause_effect`)."""
    runs = []
    for path in paths:
        for record in read_runs(Path(path)):
            if "config" not in record:
                runs.append(record)
                continue
            runs.append(from_protocol(record, equivalent))
            if score_with is not None and not runs[-1]["system"].startswith("seq_only"):
                runs[-1] |= protocol_cause_effect(record, score_with)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    parser.add_argument(
        "--lr",
        type=float,
        default=DEFAULTS["lr"],
        help="the Hugging Face baselines' learning rate (ours train at train.py's)",
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    parser.add_argument("--model", default=DEFAULTS["model"])
    parser.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu"])
    parser.add_argument(
        "--limit", type=int, default=None, help="first N examples per split (smoke runs)"
    )
    parser.add_argument(
        "--data-root", default=os.environ.get("CAUSALMINE_DATA", str(ROOT / "data"))
    )
    parser.add_argument("--work-dir", default="/tmp/causalmine-bench-quality")
    parser.add_argument("--out", default=str(HERE / "results" / "quality.json"))
    parser.add_argument(
        "--summarize",
        nargs="+",
        metavar="RUNS_JSONL",
        help="only combine the runs of earlier (e.g. parallel) invocations",
    )
    parser.add_argument(
        "--curves", metavar="PNG", help="with --summarize: plot the validation curves here"
    )
    parser.add_argument(
        "--equivalent",
        nargs="+",
        default=[],
        metavar="OVERRIDE",
        help="with --summarize: bench_protocol overrides that set what the other runs ran with "
        "anyway, left out (e.g. trainer.precision=32-true against runs whose precision=auto "
        "meant fp32 on their machine); RESULTS says why",
    )
    parser.add_argument(
        "--span-ce",
        nargs="?",
        const="model",
        choices=["model", "argmax", "viterbi"],
        help="only with --summarize: also score bench_protocol runs that trained spans on "
        "Cause/Effect only (span_ce_f1, hf_token's column), from their run directories' "
        "last.ckpt, on the CPU, decoded as each model decodes (model, the default) or by argmax "
        "or viterbi",
    )
    args = parser.parse_args()
    if args.span_ce and not args.summarize:
        parser.error("--span-ce scores recorded runs: use it with --summarize")
    if args.span_ce and args.limit:
        parser.error("--span-ce scores the whole test split, as the records were: drop --limit")
    if args.summarize:
        args.device = "cpu"
        runs = runs_to_summarize(args.summarize, args.equivalent, args if args.span_ce else None)
        seen = [(r["system"], r["seed"]) for r in runs]
        twice = sorted({job for job in seen if seen.count(job) > 1})
        if twice:  # a pairing would silently keep one of them
            parser.error(f"recorded more than once: {twice}")
        kinds = {tuple(r.get(k) for k in SETTINGS) for r in runs}
        if len(kinds) > 1:  # a comparison needs one budget
            parser.error(f"the runs differ in {', '.join(SETTINGS)}: {sorted(kinds, key=str)}")
        if mixed := mixed_ce_decodings(runs):
            parser.error(mixed)
        summary = summarize(sorted(runs, key=system_order))
        compared = [
            s
            for s in dict.fromkeys(r["system"] for r in runs)
            if s.startswith("unified") or "[" in s
        ]
        differences = [row for system in compared for row in paired_differences(runs, system)]
        Path(args.out).write_text(
            json.dumps(
                {
                    "sources": args.summarize,
                    "equivalent_overrides": args.equivalent,
                    "runs": runs,
                    "summary": summary,
                    "paired_differences": differences,
                },
                indent=2,
            )
        )
        print(markdown(summary))
        print()
        print(differences_markdown(differences))
        if args.curves:
            plot_curves(runs, Path(args.curves))
            print(f"\nvalidation curves: {args.curves}")
        return
    import torch

    if args.accelerator == "auto":
        args.accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    args.device = "cuda" if args.accelerator == "gpu" else "cpu"

    runs = []
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in SETTINGS}
    # a rerun of the same command skips the jobs it already recorded with the same settings (ours:
    # and the same loss and optim values; a record without them predates RESULTS §8s's defaults)
    recipes = {
        system: our_recipe(our_config(system, 1, args, Path(args.work_dir) / "recipe"))
        for system in args.systems
        if system in OUR_SYSTEMS
    }
    recorded = reusable(
        read_runs(Path(f"{args.out}.runs.jsonl"), missing_ok=True), settings, recipes
    )
    argmax_read = sorted(
        {
            system
            for (system, _), r in recorded.items()
            if system in OUR_SYSTEMS and "span_ce_f1" in r and "span_ce_decoding" not in r
        }
    )
    if argmax_read:  # their C/E figures would be averaged with ones read as the model decodes
        parser.error(
            f"{args.out}.runs.jsonl: {argmax_read} read span_ce_f1 by argmax (recorded before "
            "2026-11-30); new runs read it as the model decodes: write to another --out"
        )
    for seed in args.seeds:
        for system in args.systems:  # interleaved by seed, so drift affects every system alike
            if (system, seed) in recorded:
                runs.append(recorded[system, seed])
                print(f"recorded earlier: {system} seed {seed}", flush=True)
                continue
            out_dir = Path(args.work_dir) / f"{system}_seed{seed}"
            start = time.perf_counter()
            if system in ("unified", "seq_only", "span_only"):
                metrics = run_ours(system, seed, args, out_dir)
            else:
                from transformers import set_seed

                set_seed(seed)  # before the model exists: its new classifier head is random
                metrics = (run_hf_seq if system == "hf_seq" else run_hf_token)(seed, args, out_dir)
            seconds = time.perf_counter() - start
            runs.append({"system": system, "seed": seed, "seconds": seconds, **settings, **metrics})
            print(json.dumps(runs[-1]), flush=True)
            with open(
                f"{args.out}.runs.jsonl", "a"
            ) as fh:  # partial results survive an interruption
                fh.write(json.dumps(runs[-1]) + "\n")
    summary = summarize(runs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {"args": {k: v for k, v in vars(args).items()}, "runs": runs, "summary": summary},
            indent=2,
        )
    )
    print(markdown(summary))


COLUMNS = (
    "seq_f1",
    "seq_accuracy",
    "seq_mcc",
    "span_f1",
    "span_f1_pooled",
    "span_f1_2023",
    "span_ce_f1",
    "seconds",
)


def summarize(runs: list[dict]) -> dict[str, dict[str, tuple[float, float] | None]]:
    summary: dict[str, dict] = {}
    for system in dict.fromkeys(r["system"] for r in runs):
        mine = [r for r in runs if r["system"] == system]
        summary[system] = {}
        for column in COLUMNS:
            values = [r[column] for r in mine if column in r]
            summary[system][column] = (
                (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
                if values
                else None
            )
    return summary


def markdown(summary: dict) -> str:
    header = [
        "system",
        "seq F1",
        "seq accuracy",
        "seq MCC",
        "span F1 (CNC 2022 official)",
        "span F1 (pooled)",
        "span F1 (CNC 2023)",
        "span C/E F1 (pooled)",
        "train+test time (s)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for system, values in summary.items():
        cells = [
            f"{v[0]:.3f} ± {v[1]:.3f}"
            if v and c != "seconds"
            else (f"{v[0]:.0f} ± {v[1]:.0f}" if v else "–")
            for c, v in values.items()
        ]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# (baseline, column): the unified model against each per-task system on that system's own task;
# the final_val_* columns are the same comparison on validation at the tested (final) weights
COMPARISONS = (
    ("hf_seq", "seq_f1"),
    ("seq_only", "seq_f1"),
    ("hf_token", "span_ce_f1"),
    ("span_only", "span_ce_f1"),
    ("span_only", "span_f1"),
    ("span_only", "span_f1_2023"),
    ("hf_seq", "final_val_seq_f1"),
    ("seq_only", "final_val_seq_f1"),
    ("span_only", "final_val_span_f1"),
)


def with_final_validation(run: dict) -> dict:
    """``run`` with ``final_val_seq_f1`` / ``final_val_span_f1``: its last validation point
    (the final weights, which are the ones tested), for the tasks its system trains."""
    curve = run.get("val_curve") or []
    trained = trained_columns(run["system"].split("[")[0])
    extra = {
        f"final_val_{column}": curve[-1][f"val/{column}"]
        for column in ("seq_f1", "span_f1")
        if curve and column in trained and f"val/{column}" in curve[-1]
    }
    return run | extra


# a lever (system unified[<config>]) against the unified default as well
LEVER_COMPARISONS = (
    ("unified", "seq_f1"),
    ("unified", "span_f1"),
    ("unified", "span_f1_2023"),
)


def comparable(run: dict, baseline: dict, column: str) -> bool:
    """Whether two runs' ``column`` pair: our Cause/Effect figures only when both were decoded
    alike (a decoding change moves span F1 by 0.04, RESULTS §3); against ``hf_token``, system
    against system, ours read as recorded (``span_ce_decoding`` in the row says how)."""
    if column != "span_ce_f1" or "hf_token" in (run["system"], baseline["system"]):
        return True
    return ce_decoding(run) == ce_decoding(baseline)


def mixed_ce_decodings(runs: list[dict]) -> str:
    """A message naming each system whose Cause/Effect figures were read different ways (its
    mean would mix them), or ``""``."""
    readings: dict[str, set[str]] = {}
    for run in runs:
        if "span_ce_f1" in run:
            readings.setdefault(run["system"], set()).add(ce_decoding(run))
    mixed = {system: sorted(r) for system, r in readings.items() if len(r) > 1}
    return f"span_ce_f1 read with different decodings within a system: {mixed}" if mixed else ""


def paired_differences(runs: list[dict], system: str = "unified") -> list[dict[str, Any]]:
    """``system`` minus each baseline on its own task, seed by seed (the seeds both have).

    A lever ``unified[<config>]`` is also compared with the unified default and with the
    per-task systems trained under the same lever (``span_only[<config2>]`` whose loss
    overrides, the switched-off task and the overrides acting on it alone aside, are the same:
    :func:`per_task_lever`); a per-task system under a lever with itself without it."""
    runs = [with_final_validation(r) for r in runs]
    by = {(r["system"], r["seed"]): r for r in runs}
    rows = []
    base = system.split("[")[0]
    if system == "unified":
        comparisons = COMPARISONS
    elif base == "unified":
        lever = next(r["lever"] for r in runs if r["system"] == system)
        same_lever = sorted(
            {
                r["system"]
                for r in runs
                if r["system"].split("[")[0] in PER_TASK_OFF
                and "[" in r["system"]
                and r.get("lever") == per_task_lever(lever, r["system"].split("[")[0])
            }
        )
        comparisons = (
            COMPARISONS
            + LEVER_COMPARISONS
            + tuple(
                (name, column)
                for name in same_lever
                for baseline, column in COMPARISONS
                if name.startswith(f"{baseline}[")
            )
        )
    else:
        comparisons = tuple((b, column) for b, column in COMPARISONS if b == base)
    for baseline, column in comparisons:
        seeds = sorted(
            seed
            for (name, seed), run in by.items()
            if name == system
            and column in run
            and column in by.get((baseline, seed), {})
            and comparable(run, by[baseline, seed], column)
        )
        if not seeds:
            continue
        deltas = [by[system, s][column] - by[baseline, s][column] for s in seeds]
        read = (
            {"span_ce_decoding": [ce_decoding(by[name, seeds[0]]) for name in (system, baseline)]}
            if column == "span_ce_f1"
            else {}
        )
        rows.append(
            {
                **read,
                "system": system,
                "baseline": baseline,
                "column": column,
                "seeds": seeds,
                "mean": statistics.mean(deltas),
                "std": statistics.stdev(deltas) if len(deltas) > 1 else 0.0,
                "wins": sum(d > 0 for d in deltas),
            }
        )
    return rows


def differences_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| system − baseline | metric | seeds | paired difference (mean ± std) | system ahead |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        seeds = ", ".join(map(str, r["seeds"]))
        read = " (read: {} − {})".format(*r["span_ce_decoding"]) if "span_ce_decoding" in r else ""
        lines.append(
            f"| {r.get('system', 'unified')} − {r['baseline']} | {r['column']}{read} | {seeds} "
            f"| {r['mean']:+.4f} ± {r['std']:.4f} "
            f"| {r['wins']}/{len(r['seeds'])} |"
        )
    return "\n".join(lines)


# the curves' panels: (title, [(system, validation metric)])
CURVE_PANELS = (
    (
        "sequence F1 (validation)",
        [("unified", "val/seq_f1"), ("seq_only", "val/seq_f1"), ("hf_seq", "val/seq_f1")],
    ),
    (
        "span F1, pooled (validation)",
        [
            ("unified", "val/span_f1_pooled"),
            ("span_only", "val/span_f1_pooled"),
            ("hf_token", "val/span_ce_f1"),
        ],
    ),
)


def plot_curves(runs: list[dict], out: Path) -> None:
    """Validation F1 per epoch, one line per system (mean over its seeds, band = min..max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levers = [s for s in dict.fromkeys(r["system"] for r in runs) if "[" in s]
    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(6 * len(CURVE_PANELS), 4))
    for ax, (title, lines) in zip(axes, CURVE_PANELS, strict=True):
        # each system's levers (unified[…], span_only[…]) are drawn with the system's metric
        variants = [(v, key) for system, key in lines for v in levers if v.startswith(f"{system}[")]
        for system, key in [*lines, *variants]:
            curves = [
                {p["epoch"]: p[key] for p in r["val_curve"] if key in p}
                for r in runs
                if r["system"] == system and r.get("val_curve")
            ]
            epochs = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
            if not epochs:
                continue
            values = [[c[e] for c in curves] for e in epochs]
            x = [e + 1 for e in epochs]
            label = f"{system} ({key.removeprefix('val/')}, {len(curves)} seeds)"
            ax.plot(x, [statistics.mean(v) for v in values], marker="o", label=label)
            ax.fill_between(x, [min(v) for v in values], [max(v) for v in values], alpha=0.2)
        ax.set(title=title, xlabel="epoch", ylabel="F1")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    from causalmine.entry import friendly_errors

    # our systems train in this process: stopped by SIGTERM, it exits 143, not Lightning's 0
    friendly_errors(main)()
