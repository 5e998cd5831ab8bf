"""Typed settings: types checked when Hydra composes the config, values checked once when
``TrainConfig.from_config`` builds the sections, old top-level keys still working."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from hydra.errors import ConfigCompositionException

from causalmine.settings import (
    SECTIONS,
    ConfigError,
    DataConfig,
    DecodeConfig,
    DecodeOverride,
    FreezeConfig,
    LossWeights,
    NetworkConfig,
    OptimConfig,
    TrainConfig,
)


def test_the_composed_default_config_builds_every_section(train_config):
    settings = TrainConfig.from_config(train_config())
    # the adopted defaults (RESULTS §8s); the fixture's one-epoch runs switch the warm-up off
    assert settings.loss == LossWeights(1.0, 1.14, 1.0, span_assignment="matched")
    assert settings.model.pooling == "cls" and settings.model.tiny["arch"] == "bert"
    assert settings.decode == DecodeConfig(["C", "E"], "viterbi", False)
    assert settings.data.kind == "cnc" and settings.data.batch_size == 8
    assert settings.freeze == FreezeConfig() and settings.optim.lr == pytest.approx(4.6e-5)
    assert settings.loggers == ["csv"] and settings.monitor == "val/joint_f1"


def test_top_level_keys_users_type_set_their_sections(train_config):
    settings = TrainConfig.from_config(
        train_config("alpha=3", "span_weight=0.5", "pair_weight=0", "pooling=mean")
    )
    loss = settings.loss
    assert (loss.alpha, loss.span_weight, loss.pair_weight) == (3.0, 0.5, 0.0)
    assert settings.model.pooling == "mean"
    # the sections' own keys work too
    settings = TrainConfig.from_config(train_config("loss.alpha=2", "model.pooling=pooler"))
    assert settings.loss.alpha == 2.0 and settings.model.pooling == "pooler"


def test_config_groups_fill_the_typed_sections(train_config):
    settings = TrainConfig.from_config(
        train_config("freeze=bottom_k", "freeze.layers=2", "data=csv", "data.train_file=a.csv")
    )
    assert settings.freeze.policy == "bottom_k" and settings.freeze.layers == 2
    assert settings.data.kind == "csv" and settings.data.columns["text"] == "text"
    assert TrainConfig.from_config(train_config("data=unicausal")).data.corpora == ["because"]


@pytest.mark.parametrize(
    "override",
    [
        "data.batch_size=eight",
        "model.span_heads=2.5",
        "optim.lr=fast",
        "decode.force_relation=maybe",
    ],
)
def test_a_value_of_the_wrong_type_fails_at_composition_naming_its_key(train_config, override):
    key = override.split("=")[0]
    with pytest.raises(ConfigCompositionException) as caught:
        train_config(override)
    assert key in str(caught.value) + str(caught.value.__cause__)


def test_an_unknown_key_fails_at_composition(train_config):
    with pytest.raises(ConfigCompositionException, match=r"data\.batchsize"):
        train_config("data.batchsize=8")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["pooling=max"], "model.pooling must be one of cls, mean, pooler, got 'max'"),
        (["alpha=-1"], "alpha must be a number >= 0"),
        (["alpha=0", "span_weight=0", "pair_weight=0"], "all 0: nothing to train"),
        (["loss.weighting=gradnorm"], "loss.weighting must be one of fixed, uncertainty"),
        (
            ["loss.span_assignment=greedy"],
            "loss.span_assignment must be one of ordered, matched, matched_leading",
        ),
        (["loss.seq_start_epoch=-1"], "loss.seq_start_epoch must be an integer >= 0"),
        (["loss.seq_label_smoothing=1"], r"loss.seq_label_smoothing must be a number in \[0, 1\)"),
        # the default warm-up on a run shorter than it, and on a sequence-only run
        (["loss.seq_start_epoch=3", "trainer.max_epochs=3"], "out of all 3 epochs"),
        (
            ["span_weight=0", "loss.seq_start_epoch=2", "trainer.max_epochs=4"],
            "epochs 0-1 would train nothing",
        ),
        (["model.span_heads=0"], "model.span_heads must be an integer >= 1"),
        (["model.dropout=1.0"], r"model.dropout must be in \[0, 1\)"),
        (
            ["model.lstm.enabled=true", "model.lstm.hidden=0"],
            "model.lstm.hidden and model.lstm.layers must be >= 1",
        ),
        (["optim.lr=0"], "optim.lr must be > 0"),
        (["optim.warmup_ratio=1.5"], r"optim.warmup_ratio must be in \[0, 1\)"),
        (["optim.layer_decay=0"], r"optim.layer_decay must be in \(0, 1\]"),
        (["freeze=bottom_k", "freeze.layers=0"], "freeze=bottom_k needs freeze.layers >= 1"),
        (["freeze.heads=[seq,crf]"], r"freeze.heads entries must be among seq, span, pair"),
        (["optim.seq_head_lr=0"], r"optim.seq_head_lr must be > 0 or null"),
        (
            ["freeze.heads=[span]", "optim.span_head_lr=1e-3"],
            "optim.span_head_lr=0.001 has no effect: freeze.heads holds the span head",
        ),
        (["decode.required_kinds=[C,X]"], "decode.required_kinds must be drawn from C, E, S"),
        (["decode.method=beam"], "decode.method must be one of argmax, viterbi"),
        (["decode.method=argmax", "decode.force_relation=true"], "needs decode.method=viterbi"),
        (["data.kind=tsv"], "data.kind must be one of cnc, unicausal, csv"),
        (["data.corpora=[because]"], "data.corpora is set but data.kind=cnc does not read it"),
        (
            ["data=unicausal", "data.train_file=a.csv"],
            "data.train_file is set but data.kind=unicausal",
        ),
        (["data=csv"], "data=csv needs data.train_file"),
        (["data=unicausal", "data.corpora=[]"], "data=unicausal needs data.corpora"),
        (["data.on_error=ignore"], "data.on_error must be one of raise, skip"),
        (["data.sampling=uniform"], "data.sampling must be one of proportional, temperature"),
        (["data.temperature=0"], "data.temperature must be > 0"),
        (["data.val_fraction=1"], r"data.val_fraction must be in \[0, 1\)"),
        (["data.max_length=4"], "data.max_length must be >= 8"),
        (["data.eval_batch_size=0"], "data.batch_size and data.eval_batch_size must be >= 1"),
        (["monitor=test/seq_f1"], "monitor must name a validation metric"),
        (["test_checkpoint=first"], "test_checkpoint must be one of best, last"),
        (["logger=none", "+logger.mlflow={}"], "unknown logger 'mlflow'"),
    ],
)
def test_every_bad_value_is_a_config_error_naming_its_key(train_config, overrides, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_config(train_config(*overrides))


def test_the_defaults_warm_up_spans_for_3_of_their_10_epochs(tmp_path):
    """The adopted defaults (RESULTS §8s), as `python train.py` composes them."""
    from .conftest import compose_config

    cfg = compose_config("train", [], tmp_path)
    settings = TrainConfig.from_config(cfg)
    assert cfg.trainer.max_epochs == 10
    assert settings.loss == LossWeights(1.0, 1.14, 1.0, "fixed", "matched", 3)
    assert (settings.optim.lr, settings.optim.head_lr) == (4.6e-5, 6.6e-4)


def test_a_warm_up_with_only_pairs_to_train_first_is_allowed(train_config):
    settings = TrainConfig.from_config(
        train_config(
            "span_weight=0", "data.pairs=true", "loss.seq_start_epoch=1", "trainer.max_epochs=2"
        )
    )
    assert settings.loss.seq_start_epoch == 1 and settings.data.pairs
    # UniCausal brings its pairs whatever data.pairs says
    settings = TrainConfig.from_config(
        train_config(
            "data=unicausal",
            "data.corpora=[because]",
            "span_weight=0",
            "loss.seq_start_epoch=1",
            "trainer.max_epochs=2",
        )
    )
    assert settings.data.kind == "unicausal" and not settings.data.pairs
    # ... but CNC, read among UniCausal's corpora, brings its (all causal) pairs only when asked
    cnc_only = ["data=unicausal", "data.corpora=[cnc]", "span_weight=0", "loss.seq_start_epoch=1"]
    with pytest.raises(ConfigError, match="would train nothing"):
        TrainConfig.from_config(train_config(*cnc_only, "trainer.max_epochs=2"))
    TrainConfig.from_config(train_config(*cnc_only, "data.pairs=true", "trainer.max_epochs=2"))
    # a CSV corpus has pairs only with a pair_text column
    csv = ["data=csv", "data.train_file=t.csv", "span_weight=0", "loss.seq_start_epoch=1"]
    with pytest.raises(ConfigError, match="would train nothing"):
        TrainConfig.from_config(train_config(*csv, "trainer.max_epochs=2"))
    TrainConfig.from_config(
        train_config(*csv, "data.columns.pair_text=marked", "trainer.max_epochs=2")
    )


def test_a_model_trained_with_every_loss_weight_at_zero_still_loads():
    """ "Nothing to train" is a rule of training; the weights themselves may all be 0."""
    assert LossWeights(0, 0, 0).alpha == 0
    with pytest.raises(ConfigError, match="alpha must be a number >= 0"):
        LossWeights(alpha=-0.5)


def test_checkpoint_sections_round_trip_through_the_same_dataclasses(train_config):
    """A checkpoint saves each section as a plain dict; loading rebuilds (and re-checks) it."""
    settings = TrainConfig.from_config(train_config("model=tiny_roberta", "optim.betas=[0.8,0.9]"))
    for name, build in SECTIONS.items():
        section = getattr(settings, name)
        assert build(**asdict(section)) == section
    assert NetworkConfig(**settings.model.to_dict()).lstm == settings.model.lstm
    assert OptimConfig(**asdict(settings.optim)).betas == (0.8, 0.9)
    assert DataConfig(**settings.data.to_dict()) == settings.data


# --- eval.py, predict.py and mine.py: one dataclass each, built first by their recipe ---------


def _entry(name: str, tmp_path, *overrides: str):
    from .conftest import compose_config

    return compose_config(name, list(overrides), tmp_path)


def test_the_inference_configs_defaults_are_the_yaml_defaults(tmp_path):
    """conf/predict.yaml, conf/mine.yaml and conf/eval.yaml set what their dataclasses say:
    the two cannot drift apart."""
    from causalmine.settings import EvalConfig, MineConfig, PredictConfig

    assert PredictConfig.from_config(
        _entry("predict", tmp_path, "model_dir=m", "input=in.txt")
    ) == PredictConfig(model_dir="m", input="in.txt")
    assert MineConfig.from_config(
        _entry("mine", tmp_path, "model_dir=m", "input=docs", "output=out")
    ) == MineConfig(model_dir="m", input="docs", output="out")
    assert EvalConfig.from_config(_entry("eval", tmp_path, "ckpt_path=c.ckpt")) == EvalConfig(
        ckpt_path="c.ckpt"
    )


def test_the_example_collection_composes_into_a_mine_config(tmp_path):
    from causalmine.settings import MineConfig

    settings = MineConfig.from_config(
        _entry("mine", tmp_path, "collection=cnc_test_texts", "model_dir=m")
    )
    assert settings.input.endswith("cnc_v2/test_subtask1_text.csv")
    assert settings.read.id_column == "index" and settings.writing.min_probability == 0.5


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("predict", ["batch_size=eight"], r"batch_size: Value 'eight'.*Integer"),
        ("predict", ["threshold=1.5"], r"threshold must be in \[0, 1\], got 1.5"),
        ("predict", ["precision=fp16"], r"precision must be one of auto, fp32, bf16, int8"),
        ("predict", ["decode.method=beam"], r"decode\.method must be one of argmax, viterbi"),
        ("predict", ["ckpt_path=x.ckpt"], r"exactly one of model_dir=DIR .* or ckpt_path"),
        ("predict", ["output_format=csv"], r"output_format must be one of jsonl, cnc"),
        ("mine", ["output=o", "shard_size=0"], r"shard_size must be >= 1, got 0"),
        ("mine", ["output=o", "launcher=spark"], r"launcher must be one of local, ray"),
        ("mine", ["output=o", "ray.workers=0"], r"ray\.workers must be >= 1, got 0"),
        ("mine", ["output=o", "txt_mode=paragraph"], r"txt_mode must be one of document, line"),
        ("mine", ["output=o", "output_format=cnc"], r"output_format must be one of parquet, jsonl"),
        ("mine", ["output=o", "min_probability=2"], r"min_probability must be in \[0, 1\]"),
        ("mine", [], r"output is required: add output=… to the command"),
    ],
)
def test_a_bad_inference_setting_names_its_key(tmp_path, name, overrides, message):
    from causalmine.settings import MineConfig, PredictConfig

    build = {"predict": PredictConfig, "mine": MineConfig}[name]
    cfg = _entry(name, tmp_path, "model_dir=m", "input=in", *overrides)
    with pytest.raises(ConfigError, match=message):
        build.from_config(cfg)


def test_a_bad_eval_setting_names_its_key(tmp_path):
    from causalmine.settings import EvalConfig

    with pytest.raises(ConfigError, match=r"ckpt_path is required: add ckpt_path=…"):
        EvalConfig.from_config(_entry("eval", tmp_path))
    with pytest.raises(ConfigError, match=r"split must be one of test, val, got 'dev'"):
        EvalConfig.from_config(_entry("eval", tmp_path, "ckpt_path=c", "split=dev"))
    with pytest.raises(ConfigError, match=r"decode\.force_relation: Value 'maybe'"):
        EvalConfig.from_config(
            _entry("eval", tmp_path, "ckpt_path=c", "decode.force_relation=maybe")
        )
    with pytest.raises(ConfigError, match=r"matmul_precision must be one of highest, high, medium"):
        EvalConfig.from_config(_entry("eval", tmp_path, "ckpt_path=c", "matmul_precision=fast"))
    assert EvalConfig.from_config(_entry("eval", tmp_path, "ckpt_path=c")).matmul_precision is None


def test_the_recipes_check_their_settings_before_reading_anything(tmp_path):
    """A bad value stops predict and mine before the (missing) input or model is touched, and
    eval before the (missing) checkpoint is."""
    from causalmine.recipes import evaluate, mine, predict

    missing = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        predict(
            _entry("predict", tmp_path, f"model_dir={missing}", f"input={missing}", "batch_size=0")
        )
    with pytest.raises(ConfigError, match="stride must be >= 0"):
        mine(
            _entry(
                "mine",
                tmp_path,
                f"model_dir={missing}",
                f"input={missing}",
                "output=o",
                "stride=-1",
            )
        )
    with pytest.raises(ConfigError, match="split must be one of test, val"):
        evaluate(_entry("eval", tmp_path, f"ckpt_path={missing}", "split=train"))


def test_inference_contradictions_and_nested_gaps_are_refused_up_front(tmp_path):
    from causalmine.settings import EvalConfig, MineConfig, PredictConfig

    decode = ("decode.method=argmax", "decode.force_relation=true")
    cfg = _entry("predict", tmp_path, "model_dir=m", "input=i", *decode)
    with pytest.raises(ConfigError, match=r"force_relation=true needs decode\.method=viterbi"):
        PredictConfig.from_config(cfg)
    cfg = _entry(
        "predict",
        tmp_path,
        "model_dir=m",
        "input=i",
        "decode.method=argmax",
        "decode.relation_order=confidence",
    )
    with pytest.raises(
        ConfigError, match=r"relation_order=confidence needs decode\.method=viterbi"
    ):
        PredictConfig.from_config(cfg)
    with pytest.raises(ConfigError, match=r"ray\.workers is required"):
        MineConfig.from_config(
            _entry("mine", tmp_path, "model_dir=m", "input=i", "output=o", "ray.workers=???")
        )
    with pytest.raises(ConfigError, match="unknown data keys: batchsize"):
        EvalConfig.from_config(_entry("eval", tmp_path, "ckpt_path=c", "+data.batchsize=4"))
    assert EvalConfig.from_config(
        _entry("eval", tmp_path, "ckpt_path=c", "+data.root=/elsewhere")
    ).data == {"root": "/elsewhere"}


def test_a_step_budget_ending_inside_the_warm_up_is_refused(train_config):
    """``trainer.max_steps`` is checked once the steps per epoch are known (3 here): a run that
    stops inside the warm-up would never train its sequence head."""
    from causalmine.recipes import train

    warm = ("loss.seq_start_epoch=1", "trainer.max_epochs=2", "test=false")
    with pytest.raises(ConfigError, match=r"max_steps=3 ends inside the span warm-up .* = 3 steps"):
        train(train_config(*warm, "trainer.max_steps=3"))
    # with no epoch limit too; two batches per step make an epoch 2 steps
    unlimited = ("loss.seq_start_epoch=1", "trainer.max_epochs=-1", "trainer.max_steps=3")
    with pytest.raises(ConfigError, match=r"max_steps=3 ends inside the span warm-up"):
        train(train_config(*unlimited))
    with pytest.raises(ConfigError, match=r"epochs of 2 steps = 2 steps"):
        train(train_config(*warm, "trainer.max_steps=2", "trainer.accumulate_grad_batches=2"))
    metrics = train(train_config(*warm, "trainer.max_steps=4"))  # one step past it
    assert "val/seq_f1" in metrics
    train(train_config(*warm, "trainer.fast_dev_run=true"))  # one step to see that all runs


@pytest.mark.parametrize("method", [None, "viterbi"])
@pytest.mark.parametrize("order", ["bogus", ""])
def test_an_unknown_relation_order_override_is_refused_with_or_without_a_method(method, order):
    """eval/predict/mine's decode.relation_order is checked as given, before any model loads."""
    with pytest.raises(ConfigError, match="relation_order"):
        DecodeOverride(method=method, relation_order=order)
