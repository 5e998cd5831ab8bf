"""End-to-end: real Hydra configs, real CNC data, tiny models, a few training steps."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from causalmine.checkpoints import load_module
from causalmine.data.collate import CausalCollator
from causalmine.data.corpora import load_cnc
from causalmine.data.datamodule import EncodedDataset
from causalmine.data.encoding import encode_example
from causalmine.lit import CausalLitModule
from causalmine.model import losses
from causalmine.model.backbone import BackboneSpec, load_tokenizer
from causalmine.precision import trainer_precision
from causalmine.recipes import evaluate, train
from causalmine.settings import ConfigError

from .conftest import REPO, compose_config


@pytest.mark.parametrize(
    ("model", "pooling"), [("tiny_bert", "cls"), ("tiny_roberta", "mean"), ("tiny_bert", "pooler")]
)
def test_train_runs_and_writes_metrics(train_config, tmp_path, model, pooling):
    cfg = train_config(f"model={model}", f"pooling={pooling}", "alpha=3")
    metrics = train(cfg)
    written = json.loads((tmp_path / "metrics.json").read_text())
    for key in (
        "val/seq_f1",
        "val/span_f1",
        "test/seq_f1",
        "test/seq_mcc",
        "test/span_f1",
        "test/span_cause_f1",
        "test/span_signal_f1",
    ):
        assert key in metrics and key in written
    assert Path(written["best_checkpoint"]).is_file()
    assert written["data"]["reports"][0]["rows_read"] == 3075
    # which machine computed these numbers (the same code can differ in the last bits elsewhere)
    environment = written["environment"]
    assert environment["torch"] == torch.__version__
    assert environment["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    ran = trainer_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    assert (environment["precision"], environment["accelerator"]) == (ran, "CPUAccelerator")


def test_eval_reproduces_the_test_metrics(train_config, tmp_path):
    metrics = train(
        train_config("model.span_heads=2", "model.lstm.enabled=true", "model.lstm.hidden=16")
    )
    best = json.loads((tmp_path / "metrics.json").read_text())["best_checkpoint"]
    eval_cfg = compose_config(
        "eval", [f"ckpt_path={best}", "trainer.enable_progress_bar=false"], tmp_path / "eval"
    )
    evaluated = evaluate(eval_cfg)
    assert {k: v for k, v in metrics.items() if k.startswith("test/")} == pytest.approx(evaluated)
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())[
        "test/seq_f1"
    ] == pytest.approx(metrics["test/seq_f1"])


def test_eval_computes_as_the_run_validated(train_config, tmp_path):
    """eval.py split=val gives a run's validation figures back exactly: it computes in the
    precision the run validated in (the checkpoint records it), not in what
    trainer.precision=auto picks on this machine; a precision given wins, and a checkpoint from
    before the record is scored at auto."""
    auto = trainer_precision("auto", "cpu")
    ran = "32-true" if auto == "bf16-mixed" else "bf16-mixed"  # what auto would not pick here
    metrics = train(train_config(f"trainer.precision={ran}", "test_checkpoint=last"))
    last = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["numerics"] == {"precision": ran, "matmul_precision": "high"}

    def scored(name: str, checkpoint: Path, *options: str) -> dict:
        evaluate(
            compose_config(
                "eval",
                [
                    f"ckpt_path={checkpoint}",
                    "split=val",
                    "trainer.enable_progress_bar=false",
                    *options,
                ],
                tmp_path / name,
            )
        )
        return json.loads((tmp_path / name / "metrics.json").read_text())

    as_run = scored("as_run", last)
    assert as_run["environment"]["precision"] == ran
    validated = {k: v for k, v in metrics.items() if k.startswith("val/")}
    assert {"val/seq_f1", "val/span_f1"} <= validated.keys()
    assert {k: as_run[k] for k in validated} == validated  # bit for bit, not approximately
    assert scored("auto", last, "trainer.precision=auto")["environment"]["precision"] == auto
    del saved["numerics"]
    torch.save(saved, tmp_path / "older.ckpt")
    assert scored("older", tmp_path / "older.ckpt")["environment"]["precision"] == auto


def test_checkpoint_rebuilds_without_the_original_backbone_source(train_config, tmp_path):
    train(train_config())
    best = json.loads((tmp_path / "metrics.json").read_text())["best_checkpoint"]
    module = load_module(best)
    assert module.hparams["backbone_config"]["model_type"] == "bert"
    assert module.hparams["network"]["span_heads"] == 3


def test_learned_task_weights_train_and_return_with_the_checkpoint(train_config, tmp_path):
    train(train_config("loss.weighting=uncertainty", "trainer.log_every_n_steps=1"))
    log = next((tmp_path / "csv").rglob("metrics.csv")).read_text()
    assert "train/span_learned_weight" in log and "train/seq_learned_weight" in log
    saved = torch.load(next((tmp_path / "checkpoints").glob("last*.ckpt")), weights_only=True)
    log_variances = saved["state_dict"]["loss_log_variances"]
    assert log_variances.shape == (3,) and log_variances[:2].abs().min() > 0  # seq, span moved
    assert log_variances[2] == 0  # CNC has no pair labels: the pair task's weight stays put
    names = [g["name"] for g in saved["optimizer_states"][0]["param_groups"]]
    assert names[-1] == "loss_weights"
    best = json.loads((tmp_path / "metrics.json").read_text())["best_checkpoint"]
    reloaded = load_module(best)
    assert reloaded.loss_log_variances is not None


def metrics_file_checkpoint(run_dir: Path, test_checkpoint: str) -> Path:
    """The checkpoint a run's test scored: its best one, or last.ckpt for the final weights."""
    if test_checkpoint == "best":
        return Path(json.loads((run_dir / "metrics.json").read_text())["best_checkpoint"])
    return run_dir / "checkpoints" / "last.ckpt"


class RecordWeights(L.Callback):
    """Test helper (``+callbacks.record._target_=tests.test_train.RecordWeights``): the weights
    after every optimizer step, kept on the class for the test to read."""

    steps: ClassVar[list[dict[str, torch.Tensor]]] = []

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        weights = {n: p.detach().clone() for n, p in pl_module.named_parameters()}
        RecordWeights.steps.append(weights)


def figures_tested(metrics: dict) -> dict:
    """A run's test figures (and at least its sequence and span F1s)."""
    figures = {k: v for k, v in metrics.items() if k.startswith("test/")}
    assert {"test/seq_f1", "test/span_f1"} <= figures.keys()
    return figures


@pytest.mark.parametrize("test_checkpoint", ["last", "best"])
def test_ema_weights_are_the_moving_average_of_the_trained_ones(
    train_config, tmp_path, test_checkpoint
):
    """callbacks=ema: the checkpoint, and the final weights the test scores, hold
    e_1 = w_1, e_t = d e_(t-1) + (1 - d) w_t over the weights w_t after each step; the
    checkpoint keeps the trained weights for a resume."""
    RecordWeights.steps = []
    cfg = train_config(
        "callbacks=ema",
        "callbacks.weight_averaging.decay=0.5",
        "trainer.limit_train_batches=4",
        f"test_checkpoint={test_checkpoint}",
        "+callbacks.record._target_=tests.test_train.RecordWeights",
    )
    metrics = train(cfg)
    steps = RecordWeights.steps
    assert len(steps) == 4
    average = dict(steps[0])
    for weights in steps[1:]:
        average = {n: 0.5 * average[n] + 0.5 * w for n, w in weights.items()}
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    for name, trained in steps[-1].items():
        assert torch.allclose(saved["state_dict"][name], average[name], atol=1e-7), name
        assert torch.equal(saved["current_model_state"][name], trained), name
    moved = [n for n in average if not torch.equal(average[n], steps[-1][n])]
    assert moved  # the average is not the last step's weights
    module = load_module(tmp_path / "checkpoints" / "last.ckpt")  # the average, for eval/export
    assert torch.equal(module.state_dict()[moved[0]], saved["state_dict"][moved[0]])
    scored = evaluate(
        compose_config(
            "eval",
            [
                f"ckpt_path={metrics_file_checkpoint(tmp_path, test_checkpoint)}",
                "trainer.enable_progress_bar=false",
            ],
            tmp_path / "eval",
        )
    )
    tested = figures_tested(metrics)
    assert tested == pytest.approx(scored)
    # the trained (not averaged) weights score otherwise: the test above can tell them apart
    saved["state_dict"] = saved.pop("current_model_state")
    torch.save(saved, tmp_path / "trained.ckpt")
    trained_scores = evaluate(
        compose_config(
            "eval",
            [f"ckpt_path={tmp_path / 'trained.ckpt'}", "trainer.enable_progress_bar=false"],
            tmp_path / "eval_trained",
        )
    )
    assert tested != pytest.approx(trained_scores)


def test_an_early_stopped_run_resumed_stays_stopped(train_config, tmp_path):
    """callbacks=early_stopping: a run that stopped early and was killed after its last
    checkpoint (during its test), resumed with ckpt_path=last, tests the weights it stopped at
    instead of training on to max_epochs (Lightning does not restore the stop)."""
    settings = (
        "callbacks=early_stopping",
        "+callbacks.early_stopping.stopping_threshold=-1.0",  # stop at the first validation
        "trainer.max_epochs=3",
        "test_checkpoint=last",
    )
    first = train(train_config(*settings))
    resumed = train(train_config(*settings, "ckpt_path=last"))
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and last["global_step"] == 3  # no epoch trained after the stop

    assert figures_tested(resumed) == pytest.approx(figures_tested(first))


@pytest.mark.parametrize("fn", ["fit", "validate"])
def test_ema_swaps_its_average_in_for_a_fits_validation_only(fn):
    """Outside a fit (``trainer.validate(ckpt_path=X)`` after one), the module holds what was
    loaded (X's average) and is scored as it is, not swapped for the fit's last average."""
    from types import SimpleNamespace

    from lightning.pytorch.trainer.states import TrainerFn

    from causalmine.training.averaging import EMAWeights

    module, fit_average = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    ema = EMAWeights(decay=0.5)
    ema._average_model = torch.optim.swa_utils.AveragedModel(fit_average)
    loaded = module.weight.detach().clone()
    trainer = SimpleNamespace(state=SimpleNamespace(fn=TrainerFn(fn)))
    ema.on_validation_epoch_start(trainer, module)
    scored = module.weight.detach().clone()
    ema.on_validation_epoch_end(trainer, module)
    expected = fit_average.weight if fn == "fit" else loaded
    assert torch.equal(scored, expected) and torch.equal(module.weight, loaded)


def test_a_finished_ema_fit_resumed_tests_the_average_as_before(train_config):
    """A run killed during its test, rerun with ckpt_path=last, has nothing left to train; its
    test still scores the averaged weights, as the run's first test did (Lightning's fit loop
    skips on_train_end then, where the average reaches the module)."""
    settings = (
        "callbacks=ema",
        "callbacks.weight_averaging.decay=0.5",
        "trainer.limit_train_batches=4",
        "test_checkpoint=last",
    )
    first = train(train_config(*settings))
    resumed = train(train_config(*settings, "ckpt_path=last"))

    assert figures_tested(resumed) == pytest.approx(figures_tested(first))


def test_a_resume_under_other_optimizer_groups_fails_and_eval_still_loads(train_config, tmp_path):
    train(train_config("optim.seq_head_lr=2e-3"))
    with pytest.raises(ConfigError, match="optimizer groups"):
        train(train_config("optim.pair_head_lr=2e-3", "ckpt_path=last", "trainer.max_epochs=2"))
    # eval and export read the weights alone, whatever optimizer the run had
    load_module(tmp_path / "checkpoints" / "last.ckpt")


def test_a_resume_under_other_loss_or_optim_values_fails_naming_them(train_config):
    """The optimizer and schedule states would continue at the saved rates while the loss took
    the new values (e.g. across a change of the defaults)."""
    train(train_config("optim.lr=1e-4", "span_weight=1"))
    with pytest.raises(ConfigError) as caught:
        train(train_config("ckpt_path=last", "trainer.max_epochs=2"))
    assert "optim.lr=0.0001 (this run: 4.6e-05)" in str(caught.value)
    assert "loss.span_weight=1.0 (this run: 1.14)" in str(caught.value)
    # the same values resume
    train(train_config("optim.lr=1e-4", "span_weight=1", "ckpt_path=last", "trainer.max_epochs=2"))


def test_a_key_a_checkpoint_predates_resumes_only_at_the_value_it_was_trained_with():
    """A checkpoint from before the warm-up existed trained without one (the dataclass default);
    AdamW's kernel may change across a resume."""
    from types import SimpleNamespace

    from causalmine.lit import CausalLitModule
    from causalmine.settings import LossWeights, OptimConfig

    old = {"hyper_parameters": {"loss": {"alpha": 1.0, "span_weight": 1.0, "pair_weight": 1.0}}}
    today = SimpleNamespace(
        loss_weights=LossWeights(seq_start_epoch=3), optim_config=OptimConfig(fused=False)
    )
    with pytest.raises(ConfigError, match=r"loss.seq_start_epoch=0 \(this run: 3\)"):
        CausalLitModule.check_training_settings(today, old)
    same = SimpleNamespace(loss_weights=LossWeights(), optim_config=OptimConfig(fused=False))
    CausalLitModule.check_training_settings(same, old)  # optim.fused=None saved: no matter


@pytest.mark.parametrize("assignment", ["matched", "matched_leading"])
def test_matched_span_assignment_reaches_the_loss_and_the_checkpoint(
    train_config, tmp_path, monkeypatch, assignment
):
    leading = []
    matcher = losses.match_relations_to_heads

    def recording(*args, **kwargs):
        leading.append(kwargs["leading"])
        return matcher(*args, **kwargs)

    monkeypatch.setattr(losses, "match_relations_to_heads", recording)
    train(train_config(f"loss.span_assignment={assignment}"))
    # every training and validation step matched its span labels, the way the config says
    assert leading and set(leading) == {assignment == "matched_leading"}
    best = json.loads((tmp_path / "metrics.json").read_text())["best_checkpoint"]
    assert load_module(best).loss_weights.span_assignment == assignment


def test_crf_span_heads_train_decode_and_come_back_with_the_checkpoint(
    train_config, tmp_path, monkeypatch
):
    from causalmine import lit
    from causalmine.export import load

    decoded_with = []
    decode_batch = lit.decode_batch

    def recording(*args, **kwargs):
        decoded_with.append(args[6])  # the CRFs' transitions
        return decode_batch(*args, **kwargs)

    monkeypatch.setattr(lit, "decode_batch", recording)
    train(train_config("model.span_crf=true", "loss.span_assignment=ordered"))
    assert decoded_with and all(t is not None for t in decoded_with)
    best = json.loads((tmp_path / "metrics.json").read_text())["best_checkpoint"]
    module = load_module(best)
    assert module.network.span_heads.crf_scores() is not None
    argmax = compose_config("eval", [f"ckpt_path={best}", "decode.method=argmax"], tmp_path / "e")
    with pytest.raises(ConfigError, match="has CRF span heads"):
        evaluate(argmax)  # refused before any data loads
    # prediction decodes under the checkpoint's transitions
    from causalmine.inference import predictor as predictor_module

    given = []
    decode_sentences = predictor_module.decode_sentences

    def recording_sentences(*args):
        given.append(args[6])
        return decode_sentences(*args)

    monkeypatch.setattr(predictor_module, "decode_sentences", recording_sentences)
    list(load(best).predict(["The storm caused floods ."]))
    (ce, _), expected = given[0], module.network.span_heads.heads[0].ce_crf.step
    assert torch.equal(ce.step[0], expected.detach())


def test_span_warm_up_leaves_the_sequence_loss_out_of_its_first_epochs(train_config, monkeypatch):
    from causalmine import lit

    steps, alphas = [], []  # (training?, epoch) of each loss, and the alpha it was weighed with
    compute, unified = lit.CausalLitModule.compute_losses, lit.unified_loss

    def computing(self, out, batch):
        steps.append((self.training, self.current_epoch))
        return compute(self, out, batch)

    def weighing(*args, **kwargs):
        alphas.append(args[5].alpha)
        return unified(*args, **kwargs)

    monkeypatch.setattr(lit.CausalLitModule, "compute_losses", computing)
    monkeypatch.setattr(lit, "unified_loss", weighing)
    train(train_config("loss.seq_start_epoch=1", "trainer.max_epochs=2", "alpha=3"))
    weighed = {
        (training, epoch, alpha) for (training, epoch), alpha in zip(steps, alphas, strict=True)
    }
    # training leaves sequences out of epoch 0 only; validation and test weigh them always
    assert {w for w in weighed if w[0]} == {(True, 0, 0.0), (True, 1, 3.0)}
    assert {(e, a) for t, e, a in weighed if not t} >= {(0, 3.0), (1, 3.0)}
    assert {a for t, _, a in weighed if not t} == {3.0}
    with pytest.raises(ConfigError, match=r"leaves the sequence loss out of all 2 epochs"):
        train(train_config("loss.seq_start_epoch=2", "trainer.max_epochs=2"))


def test_bf16_mixed_precision_trains_with_the_default_fused_adamw_and_clipping(
    train_config, tmp_path
):
    """What ``trainer.precision=auto`` picks on every recent GPU and AMX CPU: Lightning's AMP
    plugin refused to clip for the fused optimizer and stopped such runs at their first step."""
    cfg = train_config("trainer.precision=bf16-mixed", "model.lstm.enabled=true")
    assert cfg.trainer.gradient_clip_val > 0 and cfg.optim.fused is None
    metrics = train(cfg)
    assert "test/span_f1" in metrics
    saved = torch.load(next((tmp_path / "checkpoints").glob("last*.ckpt")), weights_only=True)
    assert saved["optimizer_states"][0]["param_groups"][0]["fused"] is True


@pytest.mark.parametrize("span_crf", [False, True], ids=["softmax", "crf"])
def test_tiny_model_overfits_a_handful_of_sentences(data_root, span_crf):
    """Training plumbing end to end: a tiny model must learn 8 sentences perfectly, with span
    heads scored per token or by CRFs (``model.span_crf``)."""
    L.seed_everything(0)
    tiny = {
        "arch": "bert",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }
    tokenizer = load_tokenizer(BackboneSpec("tiny-bert", tiny))
    corpus = load_cnc(data_root, download=False)
    short = [e for e in corpus.train if len(e.words) < 25]
    causal = [e for e in short if e.relations and len(e.relations) <= 2][:5]  # K=2 heads
    other = [e for e in short if e.seq_label == 0][:3]
    items = [encode_example(e, tokenizer, 64, 2) for e in causal + other]
    collator = CausalCollator(tokenizer)
    # 25 passes over the 8 sentences per epoch: 4 epochs = 100 optimizer steps
    train_loader = DataLoader(EncodedDataset(items * 25), batch_size=8, collate_fn=collator)
    module = CausalLitModule(
        network={
            "name_or_path": "tiny-bert",
            "tiny": tiny,
            "span_heads": 2,
            "dropout": 0.0,
            "head_dropout": 0.0,
            "vocab_size": len(tokenizer),
            "span_crf": span_crf,
        },
        optim={"lr": 3e-3, "head_lr": 1e-2, "warmup_ratio": 0.0, "weight_decay": 0.0},
        decode={"method": "viterbi"} if span_crf else None,  # a CRF decodes with Viterbi
    )
    trainer = L.Trainer(
        max_epochs=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=train_loader)
    (metrics,) = trainer.validate(
        module,
        dataloaders=DataLoader(EncodedDataset(items), batch_size=8, collate_fn=collator),
        verbose=False,
    )
    assert metrics["val/seq_accuracy"] == 1.0
    assert (
        metrics["val/span_f1"]
        == metrics["val/span_f1_pooled"]
        == metrics["val/span_f1_2023"]
        == 1.0
    )


def _run(args: list[str], timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )


def test_entry_point_smoke_run(tmp_path):
    """The README's main command, on a tiny model and a slice of the real data."""
    done = _run(["train.py", "model=tiny_bert", "debug=smoke", f"paths.log_dir={tmp_path}"])
    assert done.returncode == 0, done.stderr[-3000:]
    (metrics_file,) = tmp_path.glob("train/runs/*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    # whatever a tiny random model learns, its figures must be consistent with one another
    p, r = metrics["test/seq_precision"], metrics["test/seq_recall"]
    assert metrics["test/seq_f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)
    kinds = [f"test/span_{k}" for k in ("cause", "effect", "signal")]
    weighted = sum(metrics[f"{k}_f1"] * metrics[f"{k}_support"] for k in kinds)
    assert metrics["test/span_f1"] == pytest.approx(weighted / metrics["test/span_support"])
    assert metrics["data"]["splits"]["leakage"]["dropped"] is True
    # the resolved config was printed as a tree at start and saved beside the metrics
    tree = (metrics_file.parent / "config_tree.log").read_text()
    assert "${" not in tree and "optim" in tree and "lr: 4.6e-05" in tree
    assert tree.index("data") < tree.index("model") < tree.index("optim")
    assert "lr: 4.6e-05" in done.stdout
    # and the best model, exported with its card showing the run's test figures
    card = (metrics_file.parent / "model" / "README.md").read_text()
    assert (metrics_file.parent / "model" / "model.safetensors").is_file()
    assert f"| seq_f1 | {metrics['test/seq_f1']:.4f} |" in card


def test_hub_backbone_offline_fails_fast_with_a_clear_message(tmp_path):
    """Fast = before the seed is set, data is read or a trainer is built (no wall-clock limit:
    under load the run took 97 s here, nearly all of it imports); a hang on network retries
    would hit the subprocess timeout."""
    done = _run(
        ["train.py", "model=roberta", "alpha=3", f"paths.log_dir={tmp_path}"],
        timeout=300,
        HF_HUB_OFFLINE="1",
    )
    assert done.returncode != 0
    assert "'roberta-base'" in done.stderr and "model.name_or_path=DIR" in done.stderr
    log = next(tmp_path.rglob("train.log")).read_text()
    assert "BackboneUnavailable" in log
    assert not any(step in log for step in ("Seed set", "data set-up", "GPU available"))


def test_multirun_gives_every_job_its_own_directory(tmp_path):
    done = _run(
        [
            "train.py",
            "-m",
            "model=tiny_bert",
            "pooling=cls,mean,pooler",
            "alpha=1,3",
            "trainer.fast_dev_run=true",
            "logger=none",
            f"paths.log_dir={tmp_path}",
        ],
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = sorted(
        p.parent.parent for p in tmp_path.glob("train/multiruns/*/*/.hydra/overrides.yaml")
    )
    assert len(jobs) == 6 and len(set(jobs)) == 6
    assert all((job / "metrics.json").is_file() for job in jobs)


def test_bad_config_values_fail_early(train_config):
    from causalmine.config import ConfigError

    with pytest.raises(ConfigError, match="pooling must be one of"):
        train(train_config("pooling=max"))
    with pytest.raises(ConfigError, match="alpha must be"):
        train(train_config("alpha=-1"))


@pytest.mark.slow
def test_minilm_learns_on_cnc(tmp_path, data_root):
    """One epoch of the bundled MiniLM must clearly beat the majority baseline: always
    answering "causal" scores F1 0.7048 and MCC 0 on CNC dev."""
    done = _run(
        [
            "train.py",
            "trainer.max_epochs=1",
            "loss.seq_start_epoch=0",  # no span warm-up in one epoch
            "logger=none",
            f"paths.log_dir={tmp_path}",
        ],
        timeout=2400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (metrics_file,) = tmp_path.glob("train/runs/*/metrics.json")
    metrics = json.loads(metrics_file.read_text())
    dev = (data_root / "cnc_v2" / "dev_subtask1.csv").read_text(encoding="utf-8-sig")
    labels = [int(row["label"]) for row in csv.DictReader(dev.splitlines())]
    always_causal_f1 = 2 * sum(labels) / (sum(labels) + len(labels))
    assert always_causal_f1 == pytest.approx(0.7048, abs=1e-4)
    assert metrics["test/seq_f1"] > always_causal_f1 + 0.03
    assert metrics["test/seq_mcc"] > 0.3
    assert torch.isfinite(torch.tensor(metrics["test/loss"]))
