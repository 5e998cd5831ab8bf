"""The defaults under the scientific protocol: choices read validation only, test is reported.

    # the headline: python train.py at its defaults, 3 seeds
    python experiments/bench_protocol.py --configs default --seeds 1 2 3
    # the defaults' sweep, one knob at a time, read on validation
    python experiments/bench_protocol.py --configs lr5e-5 lr2e-4 batch16 no_lstm span_weight2 --seeds 1
    # the same, as one queue of explicit jobs (config:seed), two at a time
    python experiments/bench_protocol.py --jobs default:1 default:2 default:3 no_lstm:1 batch16:1
    # tables from the recorded runs (markdown), paired by seed against one config
    python experiments/bench_protocol.py --summarize experiments/results/protocol_runs.jsonl --baseline default

Each job is ``python train.py <overrides> seed=S`` in its own run directory, ``--parallel``
jobs at a time with ``--threads`` intra-op threads each (2 × 1 on a 2-core machine). After each
job one JSON line goes to ``--out``: the commit, the overrides, the wall time (of the last
attempt, and for a resumed job of all its attempts too), the validation curve per epoch (from
the CSV logs), the epoch of the best checkpoint by ``monitor`` and its validation figures, and
the test figures of that checkpoint (``metrics.json``). Partial results survive an
interruption: a job that ``--out`` already holds a successful record of (the same config, seed,
overrides, commit, code and libraries) is skipped, so a queue's command given again runs only
what is missing (``--rerun`` runs it again all the same).

A job that was killed resumes where it stopped when it is run again. Its run directory holds a
marker (``bench_protocol_job.json``: config, seed, overrides, commit, a digest of the code and
config it ran (``train.py``, ``src/``, ``conf/``), the versions of torch, transformers,
lightning, torchmetrics and numpy, a run id, the attempt, its start, and the seconds of the
attempts so far), and a directory
left unfinished by the very same job, with a whole ``last.ckpt``, resumes from it (exact resume,
``ckpt_path=last``); a directory left by anything else, or by a finished run, is cleared first.
While a job runs, its ``<run dir>.lock`` is held (by ``train.py`` too, so a runner killed alone
does not free it), and a second runner refuses the job. The record carries the run id, so a
later reader of the run directory (``bench_quality.py --span-ce``) can tell whether it still
holds this record's weights.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# overrides on the defaults of the commit a job runs at (its record names it). Since RESULTS §8s
# the defaults are levers_t2's settings: from then on levers_t2, matched and span_warmup3 change
# nothing, and the older levers read against today's defaults, not the ones they were measured on
CONFIGS: dict[str, list[str]] = {
    "default": [],
    "lr5e-5": ["optim.lr=5e-5"],
    "lr2e-4": ["optim.lr=2e-4"],
    "batch16": ["data.batch_size=16"],
    "no_lstm": ["model.lstm.enabled=false"],
    "span_weight2": ["span_weight=2"],
    "span_weight4": ["span_weight=4"],
    # learned task weights (Kendall et al. 2018)
    "uncertainty": ["loss.weighting=uncertainty"],
    # gold relations assigned to the span heads by the lowest loss, not by position
    "matched": ["loss.span_assignment=matched"],
    # matched among a sentence's first R heads for its R relations (head order keeps its meaning)
    "matched_leading": ["loss.span_assignment=matched_leading"],
    # the span-only ablation (bench_quality's span_only) with the same assignment, to pair with it
    "span_only_matched": ["alpha=0", "loss.span_assignment=matched"],
    # a linear-chain CRF over each span head's tags (trained by its likelihood, decoded under it)
    # (a CRF needs the ordered assignment, the default until §8s)
    "crf": ["model.span_crf=true", "loss.span_assignment=ordered"],
    "span_only_crf": ["alpha=0", "model.span_crf=true", "loss.span_assignment=ordered"],
    # span warm-up: the first 3 of the 10 epochs train spans (and pairs) alone
    "span_warmup3": ["loss.seq_start_epoch=3"],
    # longer warm-ups, for the dose-response of the warm-up (half and 70 % of the 10 epochs)
    "span_warmup5": ["loss.seq_start_epoch=5"],
    "span_warmup7": ["loss.seq_start_epoch=7"],
    # two levers that each gained on test, together (paired with span_only_matched)
    "span_warmup3_matched": ["loss.seq_start_epoch=3", "loss.span_assignment=matched"],
    # PCGrad: the tasks' conflicting gradient components projected out in the shared encoder
    "pcgrad": ["loss.gradient_surgery=pcgrad"],
    # mean pooling for the sequence and pair heads (all-MiniLM-L6-v2 was trained with mean
    # pooling; the default reads the first token)
    "mean_pooling": ["pooling=mean"],
    # the sequence-only ablation (bench_quality's seq_only) with the same pooling, to pair with it
    "seq_only_mean_pooling": ["span_weight=0", "pooling=mean", "loss.seq_start_epoch=0"],
    # the best two regions of the levers search (RESULTS §8n, validation, seed 1 only), rounded,
    # rerun at 3 seeds: trial 2 (warm-up 3 + matching at lower learning rates) ...
    "levers_t2": [
        "optim.lr=4.6e-5",
        "optim.head_lr=6.6e-4",
        "span_weight=1.14",
        "loss.seq_start_epoch=3",
        "loss.span_assignment=matched",
    ],
    # ... and trial 0 (ordered heads, a 1-epoch warm-up, half the span weight)
    "levers_t0": [
        "optim.lr=7.8e-5",
        "optim.head_lr=1.6e-3",
        "span_weight=0.5",
        "loss.seq_start_epoch=1",
    ],
    # levers_t2's per-task ablations (RESULTS §8s): a task's weight 0 on levers_t2's settings,
    # less the warm-up, which a single task does not have
    "levers_t2_span_only": [
        "optim.lr=4.6e-5",
        "optim.head_lr=6.6e-4",
        "span_weight=1.14",
        "loss.span_assignment=matched",
        "alpha=0",
    ],
    "levers_t2_seq_only": [
        "optim.lr=4.6e-5",
        "optim.head_lr=6.6e-4",
        "span_weight=0",
        "loss.seq_start_epoch=0",
    ],
    # more weight on spans on top of today's defaults (levers_t2's settings), to close the span
    # gap to the span-only ablation that §8s measured: a 5-epoch warm-up (the only lever ahead
    # of span-only in the mean at the old rates, §8l) and twice the span loss (§8d)
    "t2_warmup5": ["loss.seq_start_epoch=5"],
    "t2_span_weight2": ["span_weight=2"],
    # label smoothing 0.1 on the sequence loss on top of today's defaults (RESULTS §8x): aimed at
    # the sequence head's false alarms, which no decision threshold removes (§8v)
    "t2_seq_smooth01": ["loss.seq_label_smoothing=0.1"],
    # layer-wise learning-rate decay on top of today's defaults (RESULTS §8aa, not adopted): each
    # encoder layer 0.9 × the rate of the one above it (MiniLM's embeddings at 0.9^6 = 0.53 × lr)
    "t2_llrd09": ["optim.layer_decay=0.9"],
    # the sequence head's own linear layer at about 3 x head_lr on top of today's defaults (RESULTS
    # §8ac): its loss starts at epoch 3 (the warm-up), when the schedule has decayed head_lr to 78 %
    "t2_seq_head_lr2e3": ["optim.seq_head_lr=2e-3"],
    # today's defaults on CNC and UniCausal's BECAUSE together (365 more training sentences with
    # sequence and span labels, and BECAUSE's pairs): read on CNC alone against a CNC-only arm
    # with paired_test.py --a-corpus cnc (CNC's splits are the same in both, tests/test_datamodule)
    "t2_with_because": ["data=unicausal", "data.corpora=[cnc,because]"],
    # an exponential moving average of the weights (decay 0.998): validated, tested, exported
    "ema": ["callbacks=ema"],
    # the per-task ablations of the network (bench_quality's span_only and seq_only), for runs
    # made outside bench_quality (RESULTS §8s: ten seeds on a GPU)
    "span_only": ["alpha=0"],
    "seq_only": ["span_weight=0", "loss.seq_start_epoch=0"],
    # the defaults on UniCausal's BECAUSE (sequence, span and pair tasks)
    "because": ["data=unicausal", "data.corpora=[because]"],
}
VAL_CURVE = ("val/joint_f1", "val/seq_f1", "val/span_f1", "val/span_f1_pooled", "val/span_f1_2023")
TEST_KEYS = (
    "test/pair_f1",
    "test/pair_mcc",
    "test/seq_f1",
    "test/seq_accuracy",
    "test/seq_mcc",
    "test/span_f1",
    "test/span_precision",
    "test/span_recall",
    "test/span_f1_pooled",
    "test/span_f1_2023",
    "test/span_cause_f1",
    "test/span_effect_f1",
    "test/span_signal_f1",
    "test/span_multi_f1",
    "test/span_multi_recall",
)


def commit() -> str:
    """The commit the jobs run at: ``$BENCH_COMMIT`` where set (a copy of the tree without git,
    as on a lent GPU machine), else ``git rev-parse``."""
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
    except FileNotFoundError:
        raise SystemExit(
            "git is not installed: set BENCH_COMMIT to the commit of this tree"
        ) from None
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(
            f"no commit for {ROOT} ({done.stderr.strip() or 'git said nothing'}): set BENCH_COMMIT "
            "to the commit of this tree"
        )
    return done.stdout.strip()


def csv_logs(logs: Path) -> list[Path]:
    """A run's CSV logs (in its CSV logger's directory ``logs``) in the order they were written:
    those a resume set aside (``metrics-before-resume-N.csv``, N = 1, 2, ...), then the last
    attempt's ``metrics.csv``."""
    before = sorted(
        logs.glob("metrics-before-resume-*.csv"), key=lambda p: int(p.stem.rsplit("-", 1)[1])
    )
    return [*before, logs / "metrics.csv"]


def epoch_budget(run_dir: Path) -> int | None:
    """The run's ``trainer.max_epochs`` as Hydra saved it (``None``: a step budget, or not a
    plain number)."""
    import yaml

    saved = run_dir / ".hydra" / "config.yaml"
    config = yaml.safe_load(saved.read_text()) if saved.is_file() else {}
    epochs = (config.get("trainer") or {}).get("max_epochs")
    return epochs if isinstance(epochs, int) and epochs > 0 else None


def joined_curve(
    logs: Path, columns: tuple[str, ...], budget: int | None = None
) -> list[dict[str, float]]:
    """One row per validation epoch of a run's CSV logs (:func:`csv_logs` of its CSV logger's
    directory ``logs``): the ``columns`` a row has, for the rows that have any. An epoch
    validated again after a resume keeps its last row. Under an epoch ``budget``, a row at an
    epoch past it is left out: a finished training that is resumed (killed during its test)
    validates its final weights once more, logged as epoch ``budget``."""
    rows: dict[int, dict[str, float]] = {}
    for log in filter(Path.is_file, csv_logs(logs)):
        with log.open() as fh:
            for row in csv.DictReader(fh):
                values = {k: float(row[k]) for k in columns if row.get(k)}
                epoch = int(row["epoch"]) if values else None
                if epoch is not None and (budget is None or epoch < budget):
                    rows[epoch] = {"epoch": epoch} | values
    return [rows[epoch] for epoch in sorted(rows)]


def per_corpus(keys: list[str] | set[str], overall: tuple[str, ...]) -> list[str]:
    """The per-corpus versions (``stage/<corpus>/name``) of the ``overall`` keys
    (``stage/name``) among ``keys``: what a run on several corpora logs beside its totals."""
    names = {tuple(k.split("/", 1)) for k in overall}
    return sorted(
        k for k in keys if k.count("/") == 2 and (k.split("/")[0], k.split("/")[2]) in names
    )


def validation_curve(run_dir: Path) -> list[dict[str, float]]:
    """The run's validation curve (the columns of ``VAL_CURVE``, and their per-corpus versions
    for a run on several corpora) under the epoch budget Hydra saved for it
    (:func:`joined_curve`)."""
    logs = run_dir / "csv"
    logged = set()
    for log in filter(Path.is_file, csv_logs(logs)):
        with log.open() as fh:
            logged |= set(next(csv.reader(fh), []))
    return joined_curve(logs, (*VAL_CURVE, *per_corpus(logged, VAL_CURVE)), epoch_budget(run_dir))


JOB_MARKER = "bench_protocol_job.json"


def code_digest() -> str:
    """A digest of what a job runs (``train.py``, ``src/``'s Python, ``conf/``'s YAML): the
    commit alone does not see a tree with uncommitted changes, or one copied without git."""
    digest = hashlib.sha256()
    files = [ROOT / "train.py", *(ROOT / "src").rglob("*.py"), *(ROOT / "conf").rglob("*.yaml")]
    for path in sorted(files):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


# the libraries whose versions decide what a run computes (an upgrade may change its figures)
LIBRARIES = ("torch", "transformers", "lightning", "torchmetrics", "numpy")


def library_versions() -> dict[str, str]:
    """The installed versions of ``LIBRARIES`` (``"unknown"`` for one without package metadata)."""

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {name: version(name) for name in LIBRARIES}


def job_identity(config: str, seed: int, args: argparse.Namespace) -> dict:
    """What makes two runs the same job: the run directory may be resumed only by it."""
    return {
        "config": config,
        "seed": seed,
        "overrides": [*CONFIGS[config], *args.extra],
        "commit": args.commit,
        "code": args.code,
        "libraries": library_versions(),
    }


def left_by(run_dir: Path) -> dict | None:
    """The marker of the job that last ran in ``run_dir`` (``None``: none, or unreadable)."""
    try:
        return json.loads((run_dir / JOB_MARKER).read_text())
    except (OSError, ValueError):
        return None


def whole_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint whose every member reads back (torch's zip format)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, EOFError, zipfile.BadZipFile):
        return False


def killed_attempt_seconds(run_dir: Path, marker: dict) -> float | None:
    """How long the attempt that ``marker`` started ran, when its runner was killed with it (a
    runner that lives records the time itself): from its start to the last write of any file in
    ``run_dir`` (its log, checkpoints, CSV), which the kill stopped. ``None`` for a marker that
    predates ``started``."""
    if "started" not in marker:
        return None
    written = [
        p.stat().st_mtime
        for p in run_dir.rglob("*")
        if p.is_file() and not p.name.startswith(JOB_MARKER)
    ]
    return max([0.0, *(t - marker["started"] for t in written)])


def write_marker(run_dir: Path, marker: dict) -> None:
    """Replace ``run_dir``'s marker at once: a kill while writing leaves the old one."""
    partial = run_dir / f"{JOB_MARKER}.partial"
    partial.write_text(json.dumps(marker))
    os.replace(partial, run_dir / JOB_MARKER)


def prepare_run_dir(run_dir: Path, job: dict) -> dict:
    """Make ``run_dir`` this job's and return its marker. A directory that the same job left
    unfinished (no ``metrics.json``) with a whole ``last.ckpt`` is kept to be resumed, with its
    run id and one more attempt; anything else there is cleared, so that no run starts from
    another run's weights (and none is read later as another run's, where its record has a run
    id)."""
    marker = left_by(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    same_job = marker is not None and {k: marker.get(k) for k in job} == job
    if same_job and not (run_dir / "metrics.json").is_file() and whole_checkpoint(last):
        if not marker.get("ended"):  # its runner died with it: the time its files tell
            killed = killed_attempt_seconds(run_dir, marker)
            spent = marker.get("seconds_spent", 0.0)
            marker["seconds_spent"] = None if killed is None or spent is None else spent + killed
        marker["ended"] = False
        marker["attempt"] = marker.get("attempt", 1) + 1
        print(f"{run_dir}: resuming this job's attempt {marker['attempt'] - 1}", flush=True)
    else:
        if run_dir.exists():
            why = "its checkpoint is missing or broken" if same_job else "another job's or finished"
            print(f"{run_dir}: {why}; starting afresh", flush=True)
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        marker = job | {"run_id": uuid.uuid4().hex, "attempt": 1}
    marker["started"] = time.time()
    write_marker(run_dir, marker)
    return marker


def run_dir_of(args: argparse.Namespace, config: str, seed: int) -> Path:
    """The run directory of one job, in ``--work-dir``."""
    return Path(args.work_dir) / f"{config}_seed{seed}"


def read_runs(path: Path, missing_ok: bool = False) -> list[dict]:
    """The runs recorded in a JSONL file, one per non-empty line. A file that does not exist is
    an error (a mistyped path would otherwise read as no runs), or no runs with ``missing_ok``
    (an ``--out`` file not written yet); a line that is not JSON is an error naming it."""
    if missing_ok and not path.is_file():
        return []
    if not path.is_file():
        raise SystemExit(f"{path}: no such file of runs")
    runs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                runs.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise SystemExit(f"{path}, line {number}: not a JSON record ({error})") from None
    return runs


def already_recorded(
    records: list[dict], config: str, seed: int, args: argparse.Namespace
) -> dict | None:
    """The successful record among ``records`` of this very job (config, seed, overrides,
    commit, and the code digest and library versions where the record has them), if any."""
    job = job_identity(config, seed, args)
    for record in records:
        if record.get("returncode") == 0 and all(record.get(k, job[k]) == job[k] for k in job):
            return record
    return None


def not_recordable(run_dir: Path, config: str, args: argparse.Namespace) -> str | None:
    """Why ``--record`` cannot record ``run_dir`` as ``config`` run at ``args.record`` with
    ``args.extra`` (``None``: it can). A directory without a marker predates markers and is
    taken at its word."""
    if not (run_dir / ".hydra" / "config.yaml").is_file():
        return f"{run_dir} holds no run (no .hydra/config.yaml)"
    if not (run_dir / JOB_MARKER).exists():
        return None
    marker = left_by(run_dir)
    if marker is None:
        return f"its marker {run_dir / JOB_MARKER} does not read"
    if marker.get("commit") != args.record:
        return f"it ran at {marker.get('commit')}"
    if marker.get("overrides") != [*CONFIGS[config], *args.extra]:
        return f"it ran with the overrides {marker.get('overrides')}"
    return None


def run_job(config: str, seed: int, args: argparse.Namespace) -> dict | None:
    """Run (or resume) one job and return its record; ``None`` when another process is running
    the same run directory."""
    run_dir = run_dir_of(args, config, seed)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{run_dir}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{run_dir}: another process is running this job; skipped", flush=True)
            return None
        marker = prepare_run_dir(run_dir, job_identity(config, seed, args))
        overrides = [*CONFIGS[config], f"seed={seed}", "logger=csv", f"hydra.run.dir={run_dir}"]
        if marker["attempt"] > 1:
            overrides.append("ckpt_path=last")  # this run directory's own last.ckpt: exact resume
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(args.threads),
            "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        }
        start = time.perf_counter()
        # every attempt's output, in order, straight to the file: a train.py that outlives a
        # killed runner goes on writing there (a pipe would break with the runner)
        with (run_dir / "bench_protocol.log").open("a") as log:
            log.write(f"--- attempt {marker['attempt']}\n")
            log.flush()
            done = subprocess.run(
                [sys.executable, str(ROOT / "train.py"), *overrides, *args.extra],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(lock.fileno(),),  # train.py holds the lock too, should this runner die
            )
            log.write(f"--- attempt {marker['attempt']}: returncode {done.returncode}\n")
        seconds = time.perf_counter() - start
        spent = marker.get("seconds_spent", 0.0)  # every attempt's time, None once one is unknown
        write_marker(
            run_dir,
            marker | {"ended": True, "seconds_spent": None if spent is None else spent + seconds},
        )
        return record_of(config, seed, args, run_dir, seconds, done.returncode)


def record_of(
    config: str, seed: int, args: argparse.Namespace, run_dir: Path, seconds: float, returncode: int
) -> dict:
    """The JSON record of a finished job (``returncode`` 0: its figures too)."""
    marker = left_by(run_dir) or {}
    record = {
        "config": config,
        "seed": seed,
        "overrides": [*CONFIGS[config], *args.extra],
        "commit": args.commit,
        "seconds": round(seconds, 1),
        "returncode": returncode,
        "run_dir": str(run_dir),
        # which run left the directory's weights, the attempt this record is of (seconds are its
        # own), the digest of the code it ran and its libraries' versions; absent for runs made
        # before the marker existed (and the versions for runs before 5fd2b8a)
        **{k: v for k, v in marker.items() if k in ("run_id", "attempt", "code", "libraries")},
    }
    if marker.get("attempt", 1) > 1 and marker.get("ended") and marker.get("seconds_spent"):
        # with the earlier attempts' (a killed runner's up to its attempt's last write)
        record["seconds_all_attempts"] = round(marker["seconds_spent"], 1)
    if returncode == 0 and not (run_dir / "metrics.json").is_file():
        # a commit before entry.py's status 143 on SIGTERM exits 0 when stopped by it
        return record | {"returncode": 1, "error": "train.py exited 0 but wrote no metrics.json"}
    if returncode == 0:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        curve = validation_curve(run_dir)
        best = max(curve, key=lambda r: r["val/joint_f1"])  # what the checkpoint callback kept
        record |= {
            "best_epoch": best["epoch"],
            "best_checkpoint": Path(metrics["best_checkpoint"]).name,
            "val_curve": curve,
            **{k: v for k, v in best.items() if k != "epoch"},
            **{k: metrics[k] for k in TEST_KEYS if k in metrics},
            **{k: metrics[k] for k in per_corpus(list(metrics), TEST_KEYS)},
            # the machine that computed them (train.py writes it since RESULTS §8ac)
            **({"environment": metrics["environment"]} if "environment" in metrics else {}),
            "leakage": metrics["data"]["splits"]["leakage"],
        }
    return record


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def untrained(config: str, key: str) -> bool:
    """Whether ``key`` reads a head that ``config`` leaves untrained (a span-only run's sequence
    figures, a sequence-only run's span figures, and either one's joint F1)."""
    overrides = set(CONFIGS.get(config, []))
    no_seq = bool(overrides & {"alpha=0", "loss.alpha=0"})
    no_span = bool(overrides & {"span_weight=0", "loss.span_weight=0"})
    task = key.split("/", 1)[-1]
    return (no_seq and task.startswith(("seq_", "joint_"))) or (
        no_span and task.startswith(("span_", "joint_"))
    )


def summarize(runs: list[dict]) -> str:
    """Markdown: the validation table of every configuration, then the test figures of each
    (a dash where the configuration leaves the head untrained)."""
    ok = [r for r in runs if r["returncode"] == 0]
    configs = list(dict.fromkeys(r["config"] for r in ok))
    lines = [
        "| config | seeds | best epoch | " + " | ".join(VAL_CURVE) + " | minutes |",
        "|" + " --- |" * (len(VAL_CURVE) + 4),
    ]
    for config in configs:
        mine = [r for r in ok if r["config"] == config]
        cells = [
            "–" if untrained(config, k) else mean_std([r[k] for r in mine if k in r])
            for k in VAL_CURVE
        ]
        epochs = ",".join(str(r["best_epoch"]) for r in mine)
        minutes = (
            f"{statistics.mean(r.get('seconds_all_attempts', r['seconds']) / 60 for r in mine):.1f}"
        )
        seeds = ",".join(str(r["seed"]) for r in mine)
        lines.append(f"| {config} | {seeds} | {epochs} | " + " | ".join(cells) + f" | {minutes} |")
    lines += [
        "",
        "| config | " + " | ".join(TEST_KEYS) + " |",
        "|" + " --- |" * (len(TEST_KEYS) + 1),
    ]
    for config in configs:
        mine = [r for r in ok if r["config"] == config]
        lines.append(
            f"| {config} | "
            + " | ".join(
                "–" if untrained(config, k) else mean_std([r[k] for r in mine if k in r])
                for k in TEST_KEYS
            )
            + " |"
        )
    failed = [f"{r['config']} seed {r['seed']}" for r in runs if r["returncode"] != 0]
    if failed:
        lines += ["", "failed: " + ", ".join(failed)]
    return "\n".join(lines)


def without_overrides(runs: list[dict], equivalent: list[str]) -> list[dict]:
    """``runs`` with the ``equivalent`` overrides dropped from their records: settings that
    the runs they are compared with had too, without saying so (``--equivalent``)."""
    return [r | {"overrides": [o for o in r["overrides"] if o not in equivalent]} for r in runs]


def shared_setting(record: dict) -> list[str]:
    """A run's overrides beyond its config's own (e.g. ``trainer.max_epochs=10``): runs pair only
    when these agree. ``test_checkpoint`` is left out: it changes the test figures only."""
    own = set(CONFIGS.get(record["config"], []))
    return sorted(
        o for o in record["overrides"] if o not in own and not o.startswith("test_checkpoint=")
    )


def other_data(config: str) -> bool:
    """Whether ``config`` trains on other data than the default (its validation split differs)."""
    return any(o.startswith(("data=", "data.corpora")) for o in CONFIGS.get(config, []))


def by_config_and_seed(runs: list[dict]) -> dict[tuple[str, int], dict]:
    """The successful runs by (config, seed); a run recorded twice is an error (which of the
    two would be silently chosen)."""
    ok: dict[tuple[str, int], dict] = {}
    for r in runs:
        if r["returncode"] == 0:
            if (r["config"], r["seed"]) in ok:
                raise SystemExit(f"{r['config']} seed {r['seed']} is recorded twice")
            ok[r["config"], r["seed"]] = r
    return ok


def paired(runs: list[dict], baseline: str) -> str:
    """Markdown: every configuration minus ``baseline`` on the same seed, on validation (the
    best checkpoint's figures, and the last epoch's, i.e. the final weights); the adoption rule
    reads ``val/joint_f1`` against twice the baseline's seed std."""
    ok = by_config_and_seed(runs)
    base = [r for (config, _), r in ok.items() if config == baseline]
    if not base:
        raise SystemExit(f"no successful run of the baseline config {baseline!r}")
    keys = [*VAL_CURVE, *(f"last epoch {k}" for k in VAL_CURVE)]

    def value(run: dict, key: str) -> float:
        if key.startswith("last epoch "):
            return run["val_curve"][-1][key.removeprefix("last epoch ")]
        return run[key]

    lines = [
        f"| config − {baseline} | seeds | " + " | ".join(keys) + " |",
        "|" + " --- |" * (len(keys) + 2),
    ]
    setting = shared_setting(base[0])
    skipped = []
    for config in dict.fromkeys(c for c, _ in ok):
        seeds = sorted(s for c, s in ok if c == config and (baseline, s) in ok)
        if config == baseline or not seeds:
            continue
        if other_data(config) or any(shared_setting(ok[config, s]) != setting for s in seeds):
            skipped.append(config)  # another corpus or budget: no pair with the baseline
            continue
        cells = []
        for key in keys:
            deltas = [value(ok[config, s], key) - value(ok[baseline, s], key) for s in seeds]
            cells.append(f"{mean_std(deltas)} ({sum(d > 0 for d in deltas)}/{len(deltas)})")
        lines.append(f"| {config} | {','.join(map(str, seeds))} | " + " | ".join(cells) + " |")
    spread = statistics.stdev(r["val/joint_f1"] for r in base) if len(base) > 1 else 0.0
    lines += [
        "",
        f"adoption threshold on val/joint_f1 (2 × {baseline}'s seed std): {2 * spread:.4f}",
    ]
    if skipped:
        lines.append(f"not paired (other data or settings than {baseline}): {', '.join(skipped)}")
    return "\n".join(lines)


def plot_curves(runs: list[dict], out: Path) -> None:
    """Validation F1 per epoch (sequence, official span, span under CNC 2023 rules) of every
    configuration: one thin line per seed, the mean over seeds thick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ok = [r for r in runs if r["returncode"] == 0]
    configs = list(dict.fromkeys(r["config"] for r in ok))
    keys = ("val/seq_f1", "val/span_f1", "val/span_f1_2023")
    figure, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4), sharex=True)
    for ax, key in zip(axes, keys, strict=True):
        for i, config in enumerate(configs):
            color = f"C{i}"
            curves = [[p[key] for p in r["val_curve"]] for r in ok if r["config"] == config]
            for curve in curves:
                ax.plot(range(len(curve)), curve, color=color, alpha=0.3, linewidth=0.8)
            width = min(map(len, curves))
            mean = [statistics.mean(c[e] for c in curves) for e in range(width)]
            ax.plot(range(width), mean, color=color, linewidth=2, marker="o", label=config)
        ax.set(title=key, xlabel="epoch", ylabel="F1")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["default"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument(
        "--jobs",
        nargs="+",
        metavar="CONFIG:SEED",
        help="explicit jobs, in this order (else all pairs)",
    )
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work-dir", default=str(ROOT / "logs" / "bench_protocol"))
    parser.add_argument("--out", default=str(HERE / "results" / "protocol_runs.jsonl"))
    parser.add_argument("--summarize", nargs="+", metavar="RUNS_JSONL")
    parser.add_argument("--plot", metavar="PNG", help="with --summarize: validation curves")
    parser.add_argument(
        "--baseline",
        metavar="CONFIG",
        help="with --summarize: paired differences (by seed) of every config against this one",
    )
    parser.add_argument(
        "--equivalent",
        nargs="+",
        default=[],
        metavar="OVERRIDE",
        help="with --summarize: overrides that set what the runs they are paired with ran with "
        "anyway, left out of the pairing (e.g. trainer.precision=32-true for runs paired with "
        "runs whose precision=auto meant fp32 on their machine); RESULTS says why",
    )
    parser.add_argument(
        "--record",
        metavar="COMMIT",
        help="record the --jobs that already ran in --work-dir at COMMIT instead of running them",
    )
    parser.add_argument(
        "--rerun",
        action="store_true",
        help="run (or record) jobs that --out already holds a successful record of, too",
    )
    parser.add_argument("extra", nargs="*", help="more train.py overrides for every job")
    args = parser.parse_args()
    if args.summarize:
        runs = without_overrides(
            [run for path in args.summarize for run in read_runs(Path(path))], args.equivalent
        )
        if args.equivalent:
            print(f"overrides treated as the paired runs' own settings: {args.equivalent}\n")
        print(summarize(runs))
        if args.baseline:
            print()
            print(paired(runs, args.baseline))
        if args.plot:
            plot_curves(runs, Path(args.plot))
        return
    args.commit, args.code = commit(), code_digest()
    args.work_dir = str(Path(args.work_dir).resolve())  # train.py runs in ROOT, not here
    jobs = [(config, seed) for seed in args.seeds for config in args.configs]
    if args.jobs:
        malformed = [job for job in args.jobs if not re.fullmatch(r"[\w.-]+:\d+", job)]
        if malformed:  # e.g. a train.py override given after --jobs, which takes it as a job
            parser.error(
                f"--jobs takes CONFIG:SEED, got {malformed} "
                "(put overrides before --jobs or after another option)"
            )
        jobs = [(job.split(":")[0], int(job.split(":")[1])) for job in args.jobs]
        unknown = {config for config, _ in jobs} - CONFIGS.keys()
        if unknown:
            parser.error(f"unknown config(s) {sorted(unknown)}; known: {list(CONFIGS)}")
    repeated = sorted({f"{c}:{s}" for c, s in jobs if jobs.count((c, s)) > 1})
    if repeated:
        parser.error(f"job(s) {repeated} given twice: one run directory each")
    if args.record:
        args.commit = args.record
    if not args.rerun:  # a queue's command given again after an interruption runs what is missing
        recorded = read_runs(Path(args.out), missing_ok=True)
        done = {job: r for job in jobs if (r := already_recorded(recorded, *job, args))}
        for (config, seed), record in done.items():
            print(
                f"{config}:{seed}: already recorded in {args.out} (commit {record['commit']}, "
                f"run id {record.get('run_id', 'none')}); skipped (--rerun runs it again)",
                flush=True,
            )
        jobs = [job for job in jobs if job not in done]
    if args.record:
        problems = {
            f"{config}:{seed}": problem
            for config, seed in jobs
            if (problem := not_recordable(run_dir_of(args, config, seed), config, args))
        }
        if problems:  # checked for every job before any record is written
            parser.error(f"--record {args.record}: {problems}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)

    def one(job: tuple[str, int]) -> None:
        if args.record:
            run_dir = run_dir_of(args, *job)
            done = run_dir / "metrics.json"
            started = (run_dir / ".hydra" / "config.yaml").stat().st_mtime
            seconds = done.stat().st_mtime - started if done.is_file() else 0.0
            record = record_of(*job, args, run_dir, seconds, 0 if done.is_file() else 1)
        else:
            record = run_job(*job, args)
            if record is None:
                return
        with open(args.out, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        print(json.dumps({k: v for k, v in record.items() if k != "val_curve"}), flush=True)

    with ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(one, jobs))


if __name__ == "__main__":
    main()
