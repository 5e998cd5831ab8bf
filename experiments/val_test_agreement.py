"""Does the validation split predict the test split for the differences this project decides on?

    OMP_NUM_THREADS=1 .venv/bin/python experiments/val_test_agreement.py \
        --out experiments/results/val_test_agreement.json

(with no record files given, it reads DEFAULT_RECORDS below; give bench_protocol.py record
files on the command line to use others). Descriptive only: it reads the recorded runs of
RESULTS.md §8b–§8m, trains nothing and chooses nothing.

For every (lever config, seed) of the unified model against the unified 10-epoch default on the
same seed, both at their **final weights**, it takes the paired difference

- on validation: the last epoch of the run's ``val_curve`` (the final weights) minus the
  default's last epoch;
- on test (CNC V2 dev): the run's test figures at its final weights (``test_checkpoint=last``)
  minus the default's test figures at its final weights;

for three metrics: official span F1 (``span_f1``), sequence F1 (``seq_f1``) and joint F1. Joint F1
is ``val/joint_f1`` on validation; on test it is computed the same way
(``causalmine.scoring.stage_metrics.StageMetrics.compute_and_reset``: the mean of the F1 of the
tasks the split has labels for, on CNC the mean of ``seq_f1`` and ``span_f1``); the script checks
that every ``val/joint_f1`` it reads equals that mean.

The default's two halves come from two records (RESULTS §8b, §8c, §8e):

- validation: ``budget10_runs.jsonl``, config ``epochs10`` (bench_protocol.py; its *test* figures
  are those of the best checkpoint and are not used);
- test at final weights: ``quality_e10_B.json.runs.jsonl``, system ``unified`` (bench_quality.py,
  ``test_checkpoint=last``).

Both scripts train the same ``train.py`` config, so a default run of either is the same run: the
script checks that the two records' validation curves agree for the seeds where both have one
(seeds 2 and 3; §8c's seed 1 ran before curves were recorded, so its validation cannot be checked).

Which lever records enter (each exclusion is listed in the output with its reason):

- failed runs (``returncode`` ≠ 0), runs on other data (``data=``/``data.corpora`` overrides,
  e.g. ``because`` on BECAUSE), runs at another budget than 10 epochs, per-task ablations (a task's
  loss weight 0: their untrained head's sequence or joint figures mean nothing, and they are not
  configurations of the unified model) and runs without a validation curve ending at the last epoch
  are excluded;
- runs tested on their best checkpoint (no ``test_checkpoint=last``) lack test figures at final
  weights and are excluded from the primary analysis. ``--rescored`` (``decoding_e10.json``,
  bench_decoding.py, §8f) holds final-weight re-scorings of some of them at the training-time
  decoding (span bias 0, sequence threshold 0.5); they enter the variant ``with_rescored`` only,
  and only if the re-scored validation figures reproduce the run's last validation epoch.

Variants (each with per-run-pair and per-config statistics):

- ``primary``: final weights on both splits, records with ``test_checkpoint=last`` only;
- ``with_rescored``: ``primary`` plus the re-scored runs;
- ``fp32_only``: ``primary`` without the runs that ran in bf16 autocast (``--bf16``; RESULTS §8m:
  PCGrad seeds 2 and 3), since every default run was fp32;
- ``val_best_checkpoint``: the ``primary`` pairs, but validation read at each run's selected
  checkpoint (the record's top-level ``val/*``, the figure the adoption rule reads), test still at
  final weights.

Statistics: Pearson and Spearman correlation (with scipy's two-sided p-values, which assume
independent points), sign agreement, at three levels: every run pair; every run pair with its
seed's mean difference over the configs removed (``per_run_pair_within_seed``: the pairs of one
seed share that seed's default run, whose own val and test figures would otherwise move all of
them together); and every config's mean over its seeds (the shared default then adds the same
constant to every config, so this level is free of it). For the noise: the seed std of the
default's figures on each split, the pooled within-config seed std of the raw figures of all
unified configurations, and per split a two-way ANOVA of the differences (config × seed block),
whose residual gives one run's noise, the F test of the configs, each split's reliability for
config means (1 − MS_residual / MS_config) and the correlation ceiling sqrt(rel_val · rel_test).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import bench_quality
import numpy as np
from bench_protocol import read_runs
from scipy import stats

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

# the bench_protocol.py records of §8d–§8m at 10 epochs (levers of the unified model, and the
# per-task or other-data runs recorded beside them, which the rules below exclude)
DEFAULT_RECORDS = (
    "levers10_runs.jsonl",  # §8d span_weight2 (best checkpoint tested)
    "balance10_runs.jsonl",  # §8e span_weight4, uncertainty
    "matched10_runs.jsonl",  # §8g matched, span_only_matched
    "matched_leading10_runs.jsonl",  # §8h
    "mean_pooling10_runs.jsonl",  # §8i
    "crf10_runs.jsonl",  # §8j
    "span_only_crf10_runs.jsonl",  # §8j, per-task
    "span_warmup3_10_runs.jsonl",  # §8k
    "span_warmup5_10_runs.jsonl",  # §8l
    "span_warmup3_matched10_runs.jsonl",  # §8l
    "pcgrad10_runs.jsonl",  # §8m
    "because10_runs.jsonl",  # §4b, BECAUSE (other data)
)
METRICS = ("span_f1", "seq_f1", "joint_f1")
EPOCHS = 10
# a record's overrides that switch a task off when 0
SWITCH_KEYS = tuple(key for keys in bench_quality.SWITCHES.values() for key in keys)
TOLERANCE = 1e-6


def shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def joint(seq_f1: float, span_f1: float) -> float:
    """Joint F1 as StageMetrics computes it on CNC: the mean of the two tasks' F1."""
    return (seq_f1 + span_f1) / 2


def val_point(point: dict[str, float]) -> dict[str, float]:
    """The three metrics of one validation point (a curve epoch or a record's top level)."""
    values = {"span_f1": point["val/span_f1"], "seq_f1": point["val/seq_f1"]}
    values["joint_f1"] = point["val/joint_f1"]
    if abs(values["joint_f1"] - joint(values["seq_f1"], values["span_f1"])) > TOLERANCE:
        raise SystemExit(f"val/joint_f1 is not the mean of seq and span F1: {point}")
    return values


def test_point(seq_f1: float, span_f1: float) -> dict[str, float]:
    return {"span_f1": span_f1, "seq_f1": seq_f1, "joint_f1": joint(seq_f1, span_f1)}


def overrides_of(record: dict[str, Any]) -> dict[str, str]:
    return dict(o.split("=", 1) for o in record["overrides"])


def exclusion(record: dict[str, Any]) -> str | None:
    """Why a lever record cannot pair with the default at final weights on both splits, apart
    from its test checkpoint (None when it can)."""
    overrides = overrides_of(record)
    if record.get("returncode") != 0:
        return "failed run"
    if any(k == "data" or k.startswith("data.corpora") for k in overrides):
        return (
            "other data (" + ", ".join(o for o in record["overrides"] if o.startswith("data")) + ")"
        )
    if overrides.get("trainer.max_epochs") != str(EPOCHS):
        return f"other budget than {EPOCHS} epochs"
    off = [k for k in SWITCH_KEYS if k in overrides and float(overrides[k]) == 0]
    if off:
        return (
            f"per-task ablation ({', '.join(f'{k}=0' for k in off)}): not a unified-model "
            "configuration; its untrained head's seq/joint figures mean nothing"
        )
    curve = record.get("val_curve") or []
    if not curve or curve[-1]["epoch"] != EPOCHS - 1:
        return "no validation curve ending at the last epoch"
    return None


def load_default(
    val_path: Path, val_config: str, test_path: Path, test_system: str
) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """The default per seed: validation at final weights (and at the selected checkpoint) from
    the bench_protocol record, test at final weights from the bench_quality record; and the
    checks that the two records are the same runs."""
    val_runs = {r["seed"]: r for r in read_runs(val_path) if r["config"] == val_config}
    test_runs = {r["seed"]: r for r in read_runs(test_path) if r["system"] == test_system}
    if test_runs and any(r.get("epochs") != EPOCHS for r in test_runs.values()):
        raise SystemExit(f"{test_path}: {test_system} not at {EPOCHS} epochs")
    default: dict[int, dict[str, Any]] = {}
    checks: dict[str, Any] = {"curves_identical": {}, "seed_without_curve_in_test_record": []}
    for seed in sorted(set(val_runs) & set(test_runs)):
        v, t = val_runs[seed], test_runs[seed]
        if v["val_curve"][-1]["epoch"] != EPOCHS - 1:
            raise SystemExit(f"default seed {seed}: curve does not end at epoch {EPOCHS - 1}")
        if t.get("val_curve"):
            a = {p["epoch"]: p for p in v["val_curve"]}
            b = {p["epoch"]: p for p in t["val_curve"]}
            diff = max(
                abs(a[e][k] - b[e][k]) for e in b for k in b[e] if k != "epoch" and k in a[e]
            )
            checks["curves_identical"][seed] = {"max_abs_difference": diff, "epochs": len(b)}
            if diff > TOLERANCE:
                raise SystemExit(f"default seed {seed}: the two records' curves differ ({diff})")
        else:
            checks["seed_without_curve_in_test_record"].append(seed)
        default[seed] = {
            "val_final": val_point(v["val_curve"][-1]),
            "val_best": val_point(v),
            "test_final": test_point(t["seq_f1"], t["span_f1"]),
            "val_source": f"{val_path.name}:{val_config} (commit {v['commit']})",
            "test_source": f"{test_path.name}:{test_system}",
        }
    return default, checks


def load_rescored(path: Path | None) -> dict[str, dict[str, Any]]:
    """bench_decoding.py's final-weight re-scorings at the training-time decoding (bias 0,
    threshold 0.5), keyed ``<config>_<seed>``."""
    if path is None or not path.is_file():
        return {}
    out = {}
    for name, c in json.loads(path.read_text())["checkpoints"].items():
        val_seq = c["val"].get("seq_f1_by_threshold", {}).get("0.5")
        test_seq = c["test"].get("seq_f1_by_threshold", {}).get("0.5")
        if val_seq is None or test_seq is None:
            continue  # no trained sequence head
        out[name] = {
            "path": c["path"],
            "val": {"span_f1": c["val"]["span_f1_by_bias"]["0.0"], "seq_f1": val_seq},
            "test": test_point(test_seq, c["test"]["span_f1_by_bias"]["0.0"]),
        }
    return out


def collect(
    paths: list[Path],
    default: dict[int, dict[str, Any]],
    rescored: dict[str, dict[str, Any]],
    bf16: set[tuple[str, int]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every lever (config, seed) paired with the default on its seed, and every exclusion."""
    pairs: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    for path in paths:
        for record in read_runs(path):
            key = (record["config"], record["seed"])
            where = {"config": key[0], "seed": key[1], "file": path.name}
            if key in seen:
                raise SystemExit(f"{key} is recorded twice")
            seen.add(key)
            reason = exclusion(record)
            if reason is None and key[1] not in default:
                reason = "no default run on this seed"
            if reason:
                excluded.append(where | {"reason": reason})
                continue
            overrides = overrides_of(record)
            base = default[key[1]]
            val_final = val_point(record["val_curve"][-1])
            pair = where | {
                "commit": record["commit"],
                "overrides": record["overrides"],
                "bf16": key in bf16,
                "val_final": val_final,
                "val_best": val_point(record),
                "best_epoch": record["best_epoch"],
            }
            if overrides.get("test_checkpoint") == "last":
                pair["test_source"] = "record (test_checkpoint=last)"
                pair["test_final"] = test_point(record["test/seq_f1"], record["test/span_f1"])
                pair["in_primary"] = True
            else:
                re_key = f"{key[0]}_{key[1]}"
                r = rescored.get(re_key)
                matches = r is not None and all(
                    abs(r["val"][m] - val_final[m]) <= TOLERANCE for m in ("span_f1", "seq_f1")
                )
                if not matches:
                    excluded.append(
                        where
                        | {
                            "reason": "test figures at the selected checkpoint (no "
                            "test_checkpoint=last) and no matching final-weight re-scoring"
                        }
                    )
                    continue
                pair["test_source"] = f"re-scored: {re_key} ({r['path']}), bias 0, threshold 0.5"
                pair["test_final"] = r["test"]
                pair["in_primary"] = False
                excluded.append(
                    where
                    | {
                        "reason": "test figures at the selected checkpoint (no "
                        "test_checkpoint=last): excluded from primary/fp32_only/"
                        "val_best_checkpoint; enters with_rescored via its final-weight "
                        "re-scoring (validation reproduced to 1e-6)"
                    }
                )
            for split in ("val_final", "val_best", "test_final"):
                pair[f"diff_{split}"] = {m: pair[split][m] - base[split][m] for m in METRICS}
            pairs.append(pair)
    return pairs, excluded


def correlation(x: list[float], y: list[float]) -> dict[str, Any]:
    """Pearson, Spearman, sign agreement and spreads of paired differences x (val), y (test)."""
    n = len(x)
    out: dict[str, Any] = {"n": n}
    varies = n >= 3 and float(np.ptp(x)) > TOLERANCE and float(np.ptp(y)) > TOLERANCE
    if varies:
        pr, pp = stats.pearsonr(x, y)
        sr, sp = stats.spearmanr(x, y)
        out |= {"pearson": float(pr), "pearson_p": float(pp)}
        out |= {"spearman": float(sr), "spearman_p": float(sp)}
        out["ols_slope_test_on_val"] = float(np.polyfit(x, y, 1)[0])
    if (
        varies and n >= 5
    ):  # how much one point moves Pearson's r: its range over leave-one-out subsets
        loo = [float(stats.pearsonr(x[:i] + x[i + 1 :], y[:i] + y[i + 1 :])[0]) for i in range(n)]
        out["pearson_leave_one_out_range"] = [min(loo), max(loo)]
    agree = sum((a > 0 and b > 0) or (a < 0 and b < 0) for a, b in zip(x, y, strict=True))
    ties = sum(a == 0 or b == 0 for a, b in zip(x, y, strict=True))
    out |= {
        "sign_agree": agree,
        "sign_agreement_rate": agree / n if n else math.nan,
        # what the rate would be if the two signs were independent, given each split's share of
        # positive differences
        "sign_agreement_if_independent": (
            (pv := sum(a > 0 for a in x) / n) * (pt := sum(b > 0 for b in y) / n)
            + (1 - pv) * (1 - pt)
        ),
        "ties": ties,
        "val_pos_test_pos": sum(a > 0 and b > 0 for a, b in zip(x, y, strict=True)),
        "val_pos_test_neg": sum(a > 0 and b < 0 for a, b in zip(x, y, strict=True)),
        "val_neg_test_pos": sum(a < 0 and b > 0 for a, b in zip(x, y, strict=True)),
        "val_neg_test_neg": sum(a < 0 and b < 0 for a, b in zip(x, y, strict=True)),
        "val_mean": statistics.mean(x),
        "test_mean": statistics.mean(y),
        "val_sd": statistics.stdev(x) if n > 1 else 0.0,
        "test_sd": statistics.stdev(y) if n > 1 else 0.0,
        "val_mean_abs": statistics.mean(abs(a) for a in x),
        "test_mean_abs": statistics.mean(abs(b) for b in y),
    }
    return out


def by_config(pairs: list[dict[str, Any]], split: str, metric: str) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = {}
    for p in pairs:
        groups.setdefault(p["config"], []).append(p[f"diff_{split}"][metric])
    return groups


def centred_within_seed(pairs: list[dict[str, Any]], key: str, metric: str) -> list[float]:
    """Each pair's difference minus the mean difference of its seed over the configs: what is
    left once the seed's shared default run (common to every pair of that seed) is taken out."""
    seeds: dict[int, list[float]] = {}
    for p in pairs:
        seeds.setdefault(p["seed"], []).append(p[key][metric])
    return [p[key][metric] - statistics.mean(seeds[p["seed"]]) for p in pairs]


def noise(pairs: list[dict[str, Any]], key: str, metric: str) -> dict[str, Any]:
    """Seed noise against config signal for one split's paired differences, over the configs
    that have every seed: a two-way ANOVA, config × seed (seed as a block, since the pairs of one
    seed share its default run), without interaction. The residual is one lever run's noise; the
    config means' reliability is 1 − MS_residual / MS_config (share of their variance that is not
    seed noise, 0 when negative)."""
    seeds = sorted({p["seed"] for p in pairs})
    table: dict[str, dict[int, float]] = {}
    for p in pairs:
        table.setdefault(p["config"], {})[p["seed"]] = p[key][metric]
    complete = {c: v for c, v in table.items() if sorted(v) == seeds}
    n_c, n_s = len(complete), len(seeds)
    if n_c < 2 or n_s < 2:
        return {}
    x = np.array([[complete[c][s] for s in seeds] for c in complete])
    grand = x.mean()
    config_means, seed_means = x.mean(axis=1), x.mean(axis=0)
    ms_config = n_s * ((config_means - grand) ** 2).sum() / (n_c - 1)
    ms_seed = n_c * ((seed_means - grand) ** 2).sum() / (n_s - 1)
    residual = x - config_means[:, None] - seed_means[None, :] + grand
    df_res = (n_c - 1) * (n_s - 1)
    ms_res = (residual**2).sum() / df_res
    one_way_within = x.var(axis=1, ddof=1).mean()  # seed effect left in (as a plain paired std)
    return {
        "configs": n_c,
        "seeds": seeds,
        "sd_of_config_means": float(config_means.std(ddof=1)),
        "seed_means_of_differences": dict(zip(seeds, map(float, seed_means), strict=True)),
        "pooled_within_config_sd_of_differences": float(math.sqrt(one_way_within)),
        "residual_sd_seed_block_removed": float(math.sqrt(ms_res)),
        "expected_sd_of_config_mean_from_noise": float(math.sqrt(ms_res / n_s)),
        "anova_config_F": float(ms_config / ms_res),
        "anova_config_p": float(stats.f.sf(ms_config / ms_res, n_c - 1, df_res)),
        "anova_seed_F": float(ms_seed / ms_res),
        "anova_seed_p": float(stats.f.sf(ms_seed / ms_res, n_s - 1, df_res)),
        "reliability_of_config_means": float(max(0.0, 1 - ms_res / ms_config)),
    }


def analyse(pairs: list[dict[str, Any]], val_split: str) -> dict[str, Any]:
    """Per metric: run-pair and per-config correlation of val and test differences, and noise."""
    result: dict[str, Any] = {
        "run_pairs": len(pairs),
        "configs": sorted({p["config"] for p in pairs}),
    }
    for metric in METRICS:
        x = [p[f"diff_{val_split}"][metric] for p in pairs]
        y = [p["diff_test_final"][metric] for p in pairs]
        gv, gt = by_config(pairs, val_split, metric), by_config(pairs, "test_final", metric)
        configs = list(gv)
        cx = [statistics.mean(gv[c]) for c in configs]
        cy = [statistics.mean(gt[c]) for c in configs]
        nv = noise(pairs, f"diff_{val_split}", metric)
        nt = noise(pairs, "diff_test_final", metric)
        ceiling = (
            math.sqrt(nv["reliability_of_config_means"] * nt["reliability_of_config_means"])
            if nv and nt
            else None
        )
        result[metric] = {
            "per_run_pair": correlation(x, y),
            # the same pairs with each seed's mean difference removed (its shared default run)
            "per_run_pair_within_seed": correlation(
                centred_within_seed(pairs, f"diff_{val_split}", metric),
                centred_within_seed(pairs, "diff_test_final", metric),
            ),
            "per_config": correlation(cx, cy)
            | {
                "config_means": {
                    c: {"val": a, "test": b, "seeds": len(gv[c])}
                    for c, a, b in zip(configs, cx, cy, strict=True)
                }
            },
            "noise_val": nv,
            "noise_test": nt,
            "per_config_correlation_ceiling": ceiling,
        }
    return result


def default_noise(default: dict[int, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": sorted(default)}
    for split in ("val_final", "val_best", "test_final"):
        out[split] = {
            m: {
                "per_seed": {s: default[s][split][m] for s in sorted(default)},
                "mean": statistics.mean(default[s][split][m] for s in default),
                "sd": statistics.stdev(default[s][split][m] for s in default),
            }
            for m in METRICS
        }
    return out


def pooled_run_sd(
    pairs: list[dict[str, Any]], default: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    """Pooled within-config seed std of the raw figures over the default and every config, and
    the run-level correlation of raw validation and test figures (final weights)."""
    runs = [("default", default[s]) for s in default] + [(p["config"], p) for p in pairs]
    out: dict[str, Any] = {"runs": len(runs), "configs": len({c for c, _ in runs})}
    for split in ("val_final", "test_final"):
        out[split] = {}
        for m in METRICS:
            groups: dict[str, list[float]] = {}
            for c, r in runs:
                groups.setdefault(c, []).append(r[split][m])
            var = [statistics.variance(v) for v in groups.values() if len(v) > 1]
            out[split][m] = math.sqrt(statistics.mean(var))
    out["raw_val_vs_test_pearson"] = {
        m: float(
            stats.pearsonr(
                [r["val_final"][m] for _, r in runs], [r["test_final"][m] for _, r in runs]
            )[0]
        )
        for m in METRICS
    }
    return out


LEVELS = {"per_run_pair": "run", "per_run_pair_within_seed": "in-seed", "per_config": "config"}


def table(name: str, result: dict[str, Any]) -> str:
    """A plain-text table of one variant's correlations."""
    lines = [
        f"{name}: {result['run_pairs']} run pairs, {len(result['configs'])} configs",
        f"{'metric':9} {'level':8} {'n':>3} {'pearson':>8} {'p':>6} {'spearman':>8} {'p':>6} "
        f"{'signs':>7} {'indep':>5} {'mean|dv|':>8} {'mean|dt|':>8} {'sd dv':>7} {'sd dt':>7}",
    ]
    for m in METRICS:
        for level, label in LEVELS.items():
            s = result[m][level]
            nan = math.nan
            lines.append(
                f"{m:9} {label:8} {s['n']:>3} {s.get('pearson', nan):>+8.3f} "
                f"{s.get('pearson_p', nan):>6.3f} {s.get('spearman', nan):>+8.3f} "
                f"{s.get('spearman_p', nan):>6.3f} {s['sign_agree']:>3}/{s['n']:<3} "
                f"{s['sign_agreement_if_independent']:>5.2f} {s['val_mean_abs']:>8.4f} "
                f"{s['test_mean_abs']:>8.4f} {s['val_sd']:>7.4f} {s['test_sd']:>7.4f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "records",
        nargs="*",
        type=Path,
        help="bench_protocol.py record files of the levers (default: DEFAULT_RECORDS under "
        "experiments/results)",
    )
    parser.add_argument("--default-val", type=Path, default=RESULTS / "budget10_runs.jsonl")
    parser.add_argument("--default-val-config", default="epochs10")
    parser.add_argument(
        "--default-test", type=Path, default=RESULTS / "quality_e10_B.json.runs.jsonl"
    )
    parser.add_argument("--default-test-system", default="unified")
    parser.add_argument(
        "--rescored",
        type=Path,
        default=RESULTS / "decoding_e10.json",
        help="bench_decoding.py output with final-weight re-scorings (variant with_rescored)",
    )
    parser.add_argument(
        "--bf16",
        nargs="*",
        default=["pcgrad:2", "pcgrad:3"],
        help="config:seed runs that ran in bf16 autocast (RESULTS §8m), left out of fp32_only",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "val_test_agreement.json")
    args = parser.parse_args()

    paths = args.records or [RESULTS / name for name in DEFAULT_RECORDS]
    bf16 = {(c, int(s)) for c, s in (item.rsplit(":", 1) for item in args.bf16)}
    default, checks = load_default(
        args.default_val, args.default_val_config, args.default_test, args.default_test_system
    )
    rescored = load_rescored(args.rescored)
    if rescored:  # the re-scored default checkpoints must reproduce both default records
        for seed in default:
            r = rescored.get(f"unified_{seed}")
            if r:
                diff = max(
                    [
                        abs(r["val"][m] - default[seed]["val_final"][m])
                        for m in ("span_f1", "seq_f1")
                    ]
                    + [abs(r["test"][m] - default[seed]["test_final"][m]) for m in METRICS]
                )
                checks.setdefault("rescored_default_reproduces_records", {})[seed] = diff
    pairs, excluded = collect(paths, default, rescored, bf16)

    primary = [p for p in pairs if p["in_primary"]]
    if len({p["config"] for p in primary}) < 2:
        raise SystemExit("fewer than 2 lever configs pair with the default: nothing to correlate")
    variants = {
        "primary": analyse(primary, "val_final"),
        "with_rescored": analyse(pairs, "val_final"),
        "fp32_only": analyse([p for p in primary if not p["bf16"]], "val_final"),
        "val_best_checkpoint": analyse(primary, "val_best"),
    }
    output = {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python experiments/val_test_agreement.py "
        + " ".join(sys.argv[1:]),
        "inputs": {
            "records": [shown(p) for p in paths],
            "default_val": f"{shown(args.default_val)}:{args.default_val_config}",
            "default_test": f"{shown(args.default_test)}:{args.default_test_system}",
            "rescored": shown(args.rescored),
            "bf16_runs": sorted(f"{c}:{s}" for c, s in bf16),
        },
        "definitions": {
            "val_final": "last epoch of val_curve (final weights)",
            "val_best": "the record's val/* at its selected checkpoint (best val/joint_f1)",
            "test_final": "test figures at final weights; test joint_f1 = (seq_f1 + span_f1) / 2",
            "difference": "lever − unified default on the same seed",
        },
        "checks": checks,
        "default": default_noise(default),
        "pooled_seed_sd_all_unified_runs": pooled_run_sd(primary, default),
        "variants": variants,
        "pairs_used": [
            {
                k: p[k]
                for k in (
                    "config",
                    "seed",
                    "file",
                    "commit",
                    "in_primary",
                    "bf16",
                    "test_source",
                    "best_epoch",
                    "val_final",
                    "test_final",
                    "diff_val_final",
                    "diff_val_best",
                    "diff_test_final",
                )
            }
            for p in pairs
        ],
        "excluded": excluded,
    }
    args.out.write_text(json.dumps(output, indent=2) + "\n")
    for name, result in variants.items():
        print(table(name, result), end="\n\n")
    d = output["default"]
    for split in ("val_final", "test_final"):
        print(
            f"default seed sd, {split}: "
            + ", ".join(f"{m} {d[split][m]['sd']:.4f}" for m in METRICS)
        )
    print(
        f"excluded: {len(excluded)}; pairs used: {len(primary)} primary, {len(pairs)} with rescored"
    )
    print(f"wrote {shown(args.out)}")


if __name__ == "__main__":
    main()
