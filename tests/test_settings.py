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
    FreezeConfig,
    LossWeights,
    NetworkConfig,
    OptimConfig,
    TrainConfig,
)


def test_the_composed_default_config_builds_every_section(train_config):
    settings = TrainConfig.from_config(train_config())
    assert settings.loss == LossWeights(1.0, 1.0, 1.0)
    assert settings.model.pooling == "cls" and settings.model.tiny["arch"] == "bert"
    assert settings.decode == DecodeConfig(["C", "E"], "viterbi", False)
    assert settings.data.kind == "cnc" and settings.data.batch_size == 8
    assert settings.freeze == FreezeConfig() and settings.optim.lr == pytest.approx(1e-4)
    assert settings.loggers == ["csv"] and settings.monitor == "val/joint_f1"


def test_top_level_keys_users_type_set_their_sections(train_config):
    settings = TrainConfig.from_config(
        train_config("alpha=3", "span_weight=0.5", "pair_weight=0", "pooling=mean")
    )
    assert settings.loss == LossWeights(alpha=3.0, span_weight=0.5, pair_weight=0.0)
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
