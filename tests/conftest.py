"""Shared fixtures: the corpus folder, tiny tokenizers and composed Hydra configs."""

from __future__ import annotations

import os
import subprocess

# Tiny test models gain nothing from intra-op threads, and on a 2-core machine shared with
# other work OpenMP's spinning threads make them several times slower. Subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from causalmine.config import register_with_hydra
from causalmine.model.backbone import BackboneSpec, load_tokenizer

REPO = Path(__file__).resolve().parents[1]
# a random-weight BERT small enough for unit tests
TINY_BERT = {
    "arch": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 37,
}
CONF = REPO / "conf"
os.environ.setdefault("PROJECT_ROOT", str(REPO))
register_with_hydra()


def corpus_root() -> Path:
    return Path(os.environ.get("CAUSALMINE_DATA", REPO / "data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = corpus_root()
    if not (root / "cnc_v2" / "train_subtask1.csv").is_file():
        pytest.fail(
            f"the corpora are not at {root}: run `make install` (links ../shared/data) or set CAUSALMINE_DATA"
        )
    return root


@pytest.fixture(scope="session")
def bert_tokenizer():
    return load_tokenizer(BackboneSpec("tiny-bert", {"arch": "bert"}))


@pytest.fixture(scope="session")
def roberta_tokenizer():
    return load_tokenizer(BackboneSpec("tiny-roberta", {"arch": "roberta"}))


@pytest.fixture(params=["bert", "roberta"])
def tokenizer(request, bert_tokenizer, roberta_tokenizer):
    return bert_tokenizer if request.param == "bert" else roberta_tokenizer


def compose_config(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose a real config as the entry point would, with its output directory set."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
    return cfg


def run_to_end(command: list[str]) -> subprocess.CompletedProcess:
    """Run ``command`` in the repository (a ``train.py`` run, say) and check it succeeded."""
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture
def train_config(tmp_path, data_root):
    """Factory: a composed training config on the tiny BERT and a slice of CNC."""

    def make(*overrides: str) -> DictConfig:
        base = [
            "model=tiny_bert",
            f"data.root={data_root}",
            "data.limit_examples=48",
            "data.batch_size=8",
            "data.eval_batch_size=16",
            "trainer.max_epochs=1",
            "loss.seq_start_epoch=0",  # no span warm-up in one epoch
            "trainer.limit_train_batches=3",
            "trainer.num_sanity_val_steps=0",
            "trainer.enable_progress_bar=false",
            "logger=csv",
        ]
        return compose_config("train", base + list(overrides), tmp_path)

    return make


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory, data_root) -> Path:
    """A tiny BERT trained for two steps on a slice of CNC (its best checkpoint)."""
    from causalmine.recipes import train

    out = tmp_path_factory.mktemp("run")
    cfg = compose_config(
        "train",
        [
            "model=tiny_bert",
            f"data.root={data_root}",
            "data.limit_examples=32",
            "trainer.max_epochs=1",
            "loss.seq_start_epoch=0",  # no span warm-up in one epoch
            "trainer.limit_train_batches=2",
            "trainer.num_sanity_val_steps=0",
            "trainer.enable_progress_bar=false",
            "logger=none",
            "test=false",
        ],
        out,
    )
    train(cfg)
    return next(out.glob("checkpoints/best-*.ckpt"))
