"""Precision: bf16 only where the hardware computes it, fp32 fallback, int8 prediction on CPU."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from causalmine import precision
from causalmine.inference import Predictor
from causalmine.model.backbone import BackboneSpec, load_tokenizer
from causalmine.model.network import CausalNetwork, NetworkConfig

from .conftest import TINY_BERT, compose_config

TEXTS = [
    "Prices rose because supply fell .",
    "The storm caused floods , which led to evacuations in the north of the country .",
    "The sky is blue .",
]


@pytest.mark.parametrize(
    ("cpu_bf16", "cuda", "cuda_bf16", "accelerator", "expected"),
    [
        (False, False, False, "auto", "32-true"),
        (True, False, False, "auto", "bf16-mixed"),
        (True, False, False, "cpu", "bf16-mixed"),
        (False, True, True, "auto", "bf16-mixed"),
        (False, True, False, "gpu", "16-mixed"),  # V100, T4: fp16 mixed, never bf16
        (False, True, True, "cpu", "32-true"),  # a GPU machine told to train on its CPU
    ],
)
def test_auto_precision_follows_the_hardware(
    monkeypatch, caplog, cpu_bf16, cuda, cuda_bf16, accelerator, expected
):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: cpu_bf16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda **_: cuda_bf16)
    with caplog.at_level(logging.INFO, logger="causalmine.precision"):
        assert precision.trainer_precision("auto", accelerator) == expected
    assert f"trainer.precision=auto: {expected}" in caplog.text  # the log line says what and why
    # an explicit Lightning precision is never changed
    assert precision.trainer_precision("bf16-mixed", accelerator) == "bf16-mixed"


def test_cpu_bf16_detection_reads_the_cpu_flags():
    flags = Path("/proc/cpuinfo").read_text().split()
    expected = "amx_bf16" in flags or "avx512_bf16" in flags
    assert precision.cpu_has_bf16() == expected


def test_the_environment_names_the_cpu_and_its_vector_units(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
        "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 amx_tile amx_bf16 sha_ni\n"
        "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
    )
    assert precision.cpu_model(cpuinfo) == (
        "Intel(R) Xeon(R) Platinum 8480+",
        ["amx_bf16", "amx_tile", "avx", "avx2", "avx512_bf16", "avx512f", "fma"],
    )
    environment = precision.numeric_environment("bf16-mixed", "CPUAccelerator")
    assert environment["precision"] == "bf16-mixed" and environment["torch"] == torch.__version__
    assert environment["threads"] == torch.get_num_threads()


def test_train_config_resolves_auto_before_the_trainer_sees_it(monkeypatch, tmp_path):
    from causalmine.recipes import build_trainer

    cfg = compose_config("train", ["model=tiny_bert", "logger=none"], tmp_path)
    assert cfg.trainer.precision == "auto"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert build_trainer(cfg.trainer, logger=False).precision == "32-true"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert build_trainer(cfg.trainer, logger=False).precision == "bf16-mixed"


@pytest.fixture(scope="module", params=[False, True], ids=["no_lstm", "lstm"])
def network_and_tokenizer(request):
    torch.manual_seed(0)
    tokenizer = load_tokenizer(BackboneSpec("tiny-bert", TINY_BERT))
    config = NetworkConfig(
        name_or_path="tiny-bert",
        tiny=TINY_BERT,
        vocab_size=len(tokenizer),
        lstm={"enabled": request.param, "hidden": 16, "layers": 2},
    )
    return CausalNetwork(config, None), tokenizer


def _probabilities(predictor: Predictor) -> torch.Tensor:
    return torch.tensor([p.causal_probability for p in predictor.predict(TEXTS)])


def test_prediction_precisions_agree_with_fp32(network_and_tokenizer, monkeypatch):
    network, tokenizer = network_and_tokenizer
    fp32 = _probabilities(Predictor(network, tokenizer, precision="fp32"))
    for setting in ("bf16", "int8"):
        predictor = Predictor(network, tokenizer, precision=setting)
        assert predictor.precision == setting
        other = _probabilities(predictor)
        assert not torch.equal(other, fp32)  # it did run at another precision
        torch.testing.assert_close(other, fp32, rtol=0, atol=0.02)
    # int8 quantizes a copy: the fp32 network is untouched
    assert Predictor(network, tokenizer, precision="int8").network is not network
    assert torch.equal(_probabilities(Predictor(network, tokenizer, precision="fp32")), fp32)
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert Predictor(network, tokenizer, precision="auto").precision == "fp32"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert Predictor(network, tokenizer, precision="auto").precision == "bf16"


def test_bad_prediction_precision_fails_clearly(network_and_tokenizer):
    network, tokenizer = network_and_tokenizer
    with pytest.raises(ValueError, match="precision must be one of"):
        Predictor(network, tokenizer, precision="fp8")
    with pytest.raises(ValueError, match="int8 runs on the CPU only"):
        precision.predict_precision("int8", torch.device("cuda"))


def test_eval_computes_as_the_checkpoint_ran_unless_told_otherwise():
    evaluation_numerics = precision.evaluation_numerics
    ran = {"precision": "32-true", "matmul_precision": "highest"}
    assert evaluation_numerics(None, None, ran) == ("32-true", "highest")
    assert evaluation_numerics("bf16-mixed", "high", ran) == ("bf16-mixed", "high")
    assert evaluation_numerics(None, None, None) == ("auto", "high")  # before the record
    # fp16 from a GPU, scored on a CPU: auto, not Lightning's silent bf16 in its place
    gpu = {"precision": "16-mixed", "matmul_precision": "high"}
    assert evaluation_numerics(None, None, gpu, accelerator="cpu") == ("auto", "high")
