"""W&B during a multirun, offline: one run per job, resolved config, one group, media logged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _records(run_dir: Path) -> list[dict]:
    """The records of an offline run's transaction log, read by W&B's own inspector."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _train_offline(tmp_path: Path, *overrides: str) -> None:
    """``train.py`` with W&B offline and no API key; it must succeed."""
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}
    env.update(WANDB_MODE="offline", NETRC=str(tmp_path / "no-netrc"), WANDB_SILENT="true")
    done = subprocess.run(
        [sys.executable, "train.py", *overrides],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_wandb_multirun_jobs_get_separate_resolved_runs_in_one_group(tmp_path, data_root):
    _train_offline(
        tmp_path,
        "-m",
        "model=tiny_bert",
        "alpha=1,3",
        "tags=[ablation,v2]",
        "logger=wandb",
        f"data.root={data_root}",
        "data.limit_examples=48",
        "data.eval_batch_size=16",
        "trainer.max_epochs=1",
        "loss.seq_start_epoch=0",  # no span warm-up in one epoch
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        f"paths.log_dir={tmp_path}",
    )
    runs = sorted(tmp_path.glob("train/multiruns/*/*/wandb/offline-run-*"))
    assert len(runs) == 2 and runs[0].parents[1] != runs[1].parents[1]  # one per job dir

    sweep = runs[0].parents[2].name
    seen = []
    for run_dir in runs:
        records = _records(run_dir)
        (run,) = [r["run"] for r in records if r["type"] == "run"]
        assert run["run_group"] == f"train_{sweep}"
        assert "model=tiny_bert" in run["tags"]
        assert run["tags"][:2] == ["ablation", "v2"] and not any("tags=" in t for t in run["tags"])
        assert not any(t.startswith(("paths.", "data.root", "logger")) for t in run["tags"])
        config = {}  # what the run's config panel shows (W&B's own chart specs left out)
        for update in [run.get("config", {})] + [
            r["config"] for r in records if r["type"] == "config"
        ]:
            config.update({k: v for k, v in update["update"].items() if not k.startswith("_wandb")})
        assert {"model", "pooling", "alpha", "optim", "paths", "objective"} <= set(config)
        logged = json.dumps(config)
        assert "${" not in logged  # fully resolved
        assert str(run_dir.parents[1]) in logged  # paths.output_dir: this job's directory
        seen.append(next(t for t in run["tags"] if t.startswith("alpha=")))
        files = {p.relative_to(run_dir / "files").as_posix() for p in run_dir.rglob("files/**/*")}
        for media in ("val/seq_confusion_matrix_table", "val/span_samples", "val/span_by_kind"):
            assert any(f.startswith(f"media/table/{media}_") for f in files), (media, files)
    assert sorted(seen) == ["alpha=1", "alpha=3"]


def test_wandb_run_keeps_its_id_on_resume_and_gets_the_results_as_artifacts(tmp_path, data_root):
    run_dir = tmp_path / "run"
    for epochs, resume in ((1, []), (2, ["ckpt_path=last"])):
        _train_offline(
            tmp_path,
            "model=tiny_bert",
            "logger=wandb",
            f"data.root={data_root}",
            "data.limit_examples=32",
            f"trainer.max_epochs={epochs}",
            "loss.seq_start_epoch=0",  # no span warm-up in one or two epochs
            "trainer.enable_progress_bar=false",
            "print_config=false",
            f"hydra.run.dir={run_dir}",
            *resume,
        )
    first, resumed = sorted(run_dir.glob("wandb/offline-run-*"))
    run_id = first.name.rsplit("-", 1)[1]
    assert resumed.name.rsplit("-", 1)[1] == run_id  # the same W&B run, continued
    artifacts = {
        (r["artifact"]["name"], r["artifact"]["type"])
        for r in _records(resumed)
        if r["type"] == "artifact"
    }
    for kind in ("metrics", "config", "model"):
        assert (f"{kind}-{run_id}", kind) in artifacts
    assert (run_dir / "model" / "model.safetensors").is_file()  # the best model, exported
