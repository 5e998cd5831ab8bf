"""The benchmarks' comparisons (experiments/): which runs pair with which, and what a paired
difference is. RESULTS.md's claims rest on these, so they are specified here."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from .conftest import REPO, compose_config

sys.path.insert(0, str(REPO / "experiments"))
import bench_decoding
import bench_gpu_sharing
import bench_protocol
import bench_quality
import bench_speed
import paired_test


def _protocol_record(config: str, seed: int, *overrides: str, **test: float) -> dict:
    """A bench_protocol.py record of a 10-epoch run tested on its final weights."""
    return {
        "config": config,
        "seed": seed,
        "overrides": [*overrides, "trainer.max_epochs=10", "test_checkpoint=last"],
        "returncode": 0,
        "seconds": 1600.0,
        "val_curve": [{"epoch": 0, "val/seq_f1": 0.8, "val/span_f1_pooled": 0.5}],
        **{f"test/{k}": v for k, v in test.items()},
    }


def _run(system: str, seed: int, **figures: float) -> dict:
    return {"system": system, "seed": seed, **figures}


@pytest.mark.parametrize(
    ("overrides", "system", "lever"),
    [
        ({}, "unified", ""),
        ({"span_weight": "2"}, "unified", "span_weight=2"),
        (
            {"alpha": "0", "loss.span_assignment": "matched"},
            "span_only",
            "loss.span_assignment=matched",
        ),
        ({"loss.span_weight": "0.0"}, "seq_only", ""),
        ({"span_weight": "0", "pooling": "mean"}, "seq_only", "pooling=mean"),
        # what only a switched-off task or two tasks together would use is no lever
        ({"span_weight": "0", "loss.seq_start_epoch": "0"}, "seq_only", ""),
        ({"alpha": "0", "loss.gradient_surgery": "pcgrad"}, "span_only", ""),
        # the sequence loss's smoothing is a lever of the systems that train sequences
        ({"loss.seq_label_smoothing": "0.1"}, "unified", "loss.seq_label_smoothing=0.1"),
        ({"alpha": "0", "loss.seq_label_smoothing": "0.1"}, "span_only", ""),
        (
            {"span_weight": "0", "loss.seq_label_smoothing": "0.1"},
            "seq_only",
            "loss.seq_label_smoothing=0.1",
        ),
    ],
)
def test_a_protocol_run_is_the_system_its_loss_weights_make_it(overrides, system, lever):
    assert bench_quality.protocol_system("run", overrides) == (system, lever)


def test_a_run_that_trains_neither_task_is_refused():
    with pytest.raises(SystemExit, match="trains neither sequences nor spans"):
        bench_quality.protocol_system("run", {"alpha": "0", "span_weight": "0"})


def test_an_imported_ablation_keeps_only_the_figures_of_the_head_it_trained():
    record = _protocol_record(
        "span_only_matched", 1, "alpha=0", "loss.span_assignment=matched", seq_f1=0.67, span_f1=0.55
    )
    run = bench_quality.from_protocol(record)
    assert run["system"] == "span_only[span_only_matched]"
    assert run["span_f1"] == 0.55 and "seq_f1" not in run  # its sequence head never trained
    assert run["epochs"] == 10


def test_a_run_tested_on_its_best_checkpoint_is_refused():
    record = _protocol_record("matched", 1, "loss.span_assignment=matched")
    record["overrides"].remove("test_checkpoint=last")
    with pytest.raises(SystemExit, match="tested on its best checkpoint"):
        bench_quality.from_protocol(record)


def test_a_lever_pairs_with_per_task_systems_under_the_same_lever_only():
    runs = [
        *(_run("span_only", s, span_f1=0.54) for s in (1, 2)),
        *(_run("unified", s, span_f1=0.52) for s in (1, 2)),
        _run("unified[matched]", 1, span_f1=0.53),
        _run("unified[matched]", 2, span_f1=0.55),
        *(_run("span_only[som]", s, span_f1=0.55) for s in (1, 2)),
        *(_run("span_only[sw2]", s, span_f1=0.60) for s in (1, 2)),
    ]
    for run in runs:
        if "[" in run["system"]:
            run["lever"] = "span_weight=2" if "sw2" in run["system"] else "span_assignment=matched"
    rows = {
        (r["baseline"], r["column"]): r
        for r in bench_quality.paired_differences(runs, "unified[matched]")
    }
    assert ("span_only[sw2]", "span_f1") not in rows  # another lever: no pair
    same_lever = rows["span_only[som]", "span_f1"]
    # seed 1: 0.53 - 0.55, seed 2: 0.55 - 0.55
    assert same_lever["mean"] == pytest.approx(-0.01)
    assert same_lever["std"] == pytest.approx(0.01414, abs=1e-5)
    assert same_lever["wins"] == 0 and same_lever["seeds"] == [1, 2]
    assert rows["unified", "span_f1"]["mean"] == pytest.approx(0.02)  # the lever's own gain
    assert rows["span_only", "span_f1"]["wins"] == 1
    # a per-task system under a lever is compared with itself without it, on its own task only
    ablation = bench_quality.paired_differences(runs, "span_only[som]")
    assert [(r["baseline"], r["column"]) for r in ablation] == [("span_only", "span_f1")]
    assert ablation[0]["mean"] == pytest.approx(0.01)


def test_a_lever_acting_on_the_switched_off_task_alone_does_not_stop_the_pairing():
    # the warm-up delays the sequence loss, which a span-only run does not have: the unified
    # model under warm-up + matching pairs with span-only under matching (not under another
    # span lever), and with a sequence-only system under the warm-up (matching acts on spans)
    warm_matched = "loss.seq_start_epoch=3,loss.span_assignment=matched"
    runs = [
        *(_run("unified", s, span_f1=0.52, seq_f1=0.81) for s in (1, 2)),
        *(_run("span_only", s, span_f1=0.54) for s in (1, 2)),
        *(_run("seq_only", s, seq_f1=0.79) for s in (1, 2)),
        *(_run("unified[wm]", s, span_f1=0.56, seq_f1=0.81, lever=warm_matched) for s in (1, 2)),
        _run("span_only[som]", 1, span_f1=0.55, lever="loss.span_assignment=matched"),
        _run("span_only[som]", 2, span_f1=0.53, lever="loss.span_assignment=matched"),
        *(_run("span_only[crf]", s, span_f1=0.6, lever="model.span_crf=true") for s in (1, 2)),
        *(_run("seq_only[w]", s, seq_f1=0.7, lever="") for s in (1, 2)),
    ]
    baselines = {r["baseline"] for r in bench_quality.paired_differences(runs, "unified[wm]")}
    assert baselines == {"unified", "span_only", "seq_only", "span_only[som]", "seq_only[w]"}
    rows = {
        (r["baseline"], r["column"]): r
        for r in bench_quality.paired_differences(runs, "unified[wm]")
    }
    assert rows["span_only[som]", "span_f1"]["mean"] == pytest.approx(0.02)  # 0.01 and 0.03
    assert bench_quality.per_task_lever(warm_matched, "span_only") == (
        "loss.span_assignment=matched"
    )
    # a warm-up orders two tasks: the sequence-only counterpart has none
    assert bench_quality.per_task_lever(warm_matched, "seq_only") == ""
    # nor the weight of the task switched off (levers_t2's span_weight)
    levers = "loss.seq_start_epoch=3,optim.lr=4.6e-5,span_weight=1.14"
    assert bench_quality.per_task_lever(levers, "seq_only") == "optim.lr=4.6e-5"
    assert bench_quality.per_task_lever(levers, "span_only") == "optim.lr=4.6e-5,span_weight=1.14"
    # gradient surgery acts between tasks: no per-task system has it
    surgery = "loss.gradient_surgery=pcgrad,loss.span_assignment=matched"
    assert bench_quality.per_task_lever(surgery, "span_only") == "loss.span_assignment=matched"
    assert bench_quality.per_task_lever(surgery, "seq_only") == ""
    smoothed = "loss.seq_label_smoothing=0.1,loss.seq_start_epoch=3"
    assert bench_quality.per_task_lever(smoothed, "span_only") == ""
    assert bench_quality.per_task_lever(smoothed, "seq_only") == "loss.seq_label_smoothing=0.1"


def test_systems_are_also_compared_on_validation_at_the_weights_that_were_tested():
    def run(system: str, seed: int, last: dict, **test: float) -> dict:
        curve = [{"epoch": 0, "val/seq_f1": 0.1, "val/span_f1": 0.1}, {"epoch": 9, **last}]
        return _run(system, seed, val_curve=curve, **test)

    runs = [
        run("unified", 1, {"val/seq_f1": 0.84, "val/span_f1": 0.48}, span_f1=0.52),
        run("unified", 2, {"val/seq_f1": 0.82, "val/span_f1": 0.46}, span_f1=0.53),
        # a span-only run's sequence head is untrained: its figure must not be compared
        run("span_only", 1, {"val/seq_f1": 0.99, "val/span_f1": 0.47}, span_f1=0.54),
        run("span_only", 2, {"val/seq_f1": 0.99, "val/span_f1": 0.49}, span_f1=0.54),
        run("hf_seq", 1, {"val/seq_f1": 0.80}),
    ]
    rows = {(r["baseline"], r["column"]): r for r in bench_quality.paired_differences(runs)}
    final = rows["span_only", "final_val_span_f1"]
    assert final["mean"] == pytest.approx(-0.01) and final["wins"] == 1  # +0.01, -0.03
    assert rows["hf_seq", "final_val_seq_f1"]["mean"] == pytest.approx(0.04)
    assert ("span_only", "final_val_seq_f1") not in rows


def _validation_record(config: str, seed: int, joint: float, *overrides: str) -> dict:
    curve = [{"epoch": 0, **{k: joint for k in bench_protocol.VAL_CURVE}}]
    return {
        "config": config,
        "seed": seed,
        "returncode": 0,
        "overrides": list(overrides),
        "val_curve": curve,
        **{k: joint for k in bench_protocol.VAL_CURVE},
    }


def test_validation_pairs_are_by_seed_and_the_rule_is_twice_the_baseline_spread():
    runs = [
        _validation_record("default", 1, 0.60, "trainer.max_epochs=10"),
        _validation_record("default", 2, 0.62, "trainer.max_epochs=10"),
        _validation_record(
            "matched", 1, 0.63, "loss.span_assignment=matched", "trainer.max_epochs=10"
        ),
        _validation_record(
            "matched", 2, 0.63, "loss.span_assignment=matched", "trainer.max_epochs=10"
        ),
        # another budget: never paired with the 10-epoch baseline
        _validation_record("span_weight2", 1, 0.90, "span_weight=2", "trainer.max_epochs=5"),
    ]
    table = bench_protocol.paired(runs, "default")
    matched = next(line for line in table.splitlines() if line.startswith("| matched"))
    assert "0.0200 ± 0.0141 (2/2)" in matched  # +0.03 and +0.01
    assert "2 × default's seed std): 0.0283" in table
    assert "not paired (other data or settings than default): span_weight2" in table


def test_an_override_declared_equivalent_is_left_out_of_the_pairing():
    """--equivalent: a run that pins what its baseline's runs resolved to anyway (fp32, where
    precision=auto meant fp32) pairs with them; an undeclared one does not."""
    runs = [
        _validation_record("default", 1, 0.60, "trainer.max_epochs=10"),
        _validation_record("default", 2, 0.62, "trainer.max_epochs=10"),
        _validation_record("ema", 1, 0.63, "trainer.max_epochs=10", "trainer.precision=32-true"),
        _validation_record("ema", 2, 0.61, "trainer.max_epochs=10", "trainer.precision=32-true"),
    ]
    assert "not paired (other data or settings than default): ema" in bench_protocol.paired(
        runs, "default"
    )
    table = bench_protocol.paired(
        bench_protocol.without_overrides(runs, ["trainer.precision=32-true"]), "default"
    )
    assert "0.0100 ± 0.0283 (1/2)" in next(
        line for line in table.splitlines() if line.startswith("| ema")
    )
    record = _protocol_record("ema", 1, "trainer.precision=32-true", seq_f1=0.8, span_f1=0.5)
    with pytest.raises(SystemExit, match="not comparable here"):
        bench_quality.from_protocol(record)
    assert bench_quality.from_protocol(record, ["trainer.precision=32-true"])["seq_f1"] == 0.8


def test_weight_averaging_is_a_lever():
    run = bench_quality.from_protocol(_protocol_record("ema", 1, "callbacks=ema", seq_f1=0.8))
    assert run["system"] == "unified[ema]" and run["lever"] == "callbacks=ema"


def test_a_levers_own_learning_rates_are_part_of_the_lever_not_of_the_budget():
    record = _protocol_record("lr", 1, "optim.lr=4.6e-5", "optim.head_lr=6.6e-4", span_f1=0.5)
    run = bench_quality.from_protocol(record)
    assert run["system"] == "unified[lr]" and run["lr"] == bench_quality.DEFAULTS["lr"]
    assert run["lever"] == "optim.head_lr=6.6e-4,optim.lr=4.6e-5"


def test_a_validation_run_recorded_twice_is_refused():
    runs = [_validation_record("default", 1, 0.6), _validation_record("default", 1, 0.61)]
    with pytest.raises(SystemExit, match="default seed 1 is recorded twice"):
        bench_protocol.paired(runs, "default")


def test_gpu_sharing_speedup_is_the_ratio_of_median_sweep_times():
    runs = [{"mode": "one_after_another", "wall_s": w} for w in (100.0, 120.0, 110.0)] + [
        {"mode": "all_at_once", "wall_s": w} for w in (50.0, 40.0, 55.0)
    ]
    summary = bench_gpu_sharing.summarize(runs)
    assert summary == {
        "one_after_another_wall_s": 110.0,
        "all_at_once_wall_s": 50.0,
        "speedup": pytest.approx(2.2),
    }
    assert "speedup" not in bench_gpu_sharing.summarize(runs[:3])  # one mode only: no ratio


def test_every_sharing_job_writes_to_its_own_run_directory(tmp_path):
    command = bench_gpu_sharing.job_command(3, tmp_path / "job3", ["trainer=gpu"])
    assert "seed=3" in command and f"hydra.run.dir={tmp_path / 'job3'}" in command
    assert command[-1] == "trainer=gpu"  # the caller's overrides come last and win


def test_speed_summary_is_per_precision_and_batch_size_against_the_first_system():
    def run(precision, batch, system, train, predict):
        return {
            "precision": precision,
            "batch_size": batch,
            "system": system,
            "train_samples_per_s": train,
            "predict_samples_per_s": predict,
            "peak_rss_mib": 1.0,
            "cuda_peak_mib": None,
            "train_tflops": 0.1,
            "real_tokens": 60,
            "padded_tokens": 100,
        }

    runs = [
        run("fp32", 8, "dynamic", 100.0, 400.0),
        run("fp32", 8, "pad128", 50.0, 100.0),
        run("fp32", 16, "dynamic", 180.0, 700.0),
        run("fp32", 8, "dynamic", 120.0, 600.0),
    ]
    rows = {(r["batch_size"], r["system"]): r for r in bench_speed.summarize(runs)}
    assert set(rows) == {(8, "dynamic"), (8, "pad128"), (16, "dynamic")}
    assert rows[8, "dynamic"]["train_samples_per_s"] == 110.0  # median of its two repetitions
    assert rows[8, "pad128"]["train_speedup_of_dynamic"] == pytest.approx(110 / 50)
    assert rows[8, "pad128"]["predict_speedup_of_dynamic"] == pytest.approx(500 / 100)
    assert rows[16, "dynamic"]["train_speedup_of_dynamic"] == 1.0
    assert rows[8, "pad128"]["padding_share"] == pytest.approx(0.4)


def test_a_summary_leaves_out_the_figures_of_an_untrained_head():
    assert bench_protocol.untrained("span_only_crf", "test/seq_f1")
    assert bench_protocol.untrained("span_only_crf", "val/joint_f1")
    assert not bench_protocol.untrained("span_only_crf", "test/span_f1")
    assert bench_protocol.untrained("seq_only_mean_pooling", "val/span_f1_2023")
    assert not bench_protocol.untrained("seq_only_mean_pooling", "test/seq_mcc")
    assert not bench_protocol.untrained("default", "val/joint_f1")
    run = _protocol_record("span_only_crf", 1, **{"seq_f1": 0.7, "span_f1": 0.55})
    run |= {"best_epoch": 5, "val/seq_f1": 0.71, "val/joint_f1": 0.6, "val/span_f1": 0.48}
    table = bench_protocol.summarize([run])
    assert "0.5500" in table and "0.4800" in table
    assert "0.7000" not in table and "0.7100" not in table and "0.6000" not in table


def test_the_recorded_commit_is_bench_commit_where_set_else_the_checkout(monkeypatch):
    """A lent GPU machine's copy of the tree has no git: the records name $BENCH_COMMIT."""
    monkeypatch.setenv("BENCH_COMMIT", "0123abc")
    assert bench_protocol.commit() == "0123abc"
    monkeypatch.delenv("BENCH_COMMIT")
    if not (REPO / ".git").exists():
        with pytest.raises(SystemExit, match="set BENCH_COMMIT"):
            bench_protocol.commit()
        return
    checkout = bench_protocol.commit()
    assert len(checkout) >= 7 and all(c in "0123456789abcdef" for c in checkout)


def _paired_runs(tmp_path, deltas: list[float]) -> dict:
    """Records of configs a and b on seeds 1..n whose val/joint_f1 differ by ``deltas``."""
    lines = []
    for seed, delta in enumerate(deltas, 1):
        for config, joint in (("b", 0.6), ("a", 0.6 + delta)):
            curve = [{"epoch": 9, "val/joint_f1": joint - 0.01}]
            lines.append(
                {
                    "config": config,
                    "seed": seed,
                    "returncode": 0,
                    "val/joint_f1": joint,
                    "overrides": [],
                    "val_curve": curve,
                }
            )
    lines.append({"config": "a", "seed": 99, "returncode": 1})  # failed: left out, unpaired
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return paired_test.read_records([str(path)])


def test_the_paired_t_test_matches_scipy_and_the_rule_adopts_only_a_significant_gain(tmp_path):
    from scipy import stats

    deltas = [0.012, -0.003, 0.026, 0.004, 0.004, 0.006, 0.003, -0.005, 0.018, 0.021]
    row = paired_test.compare(_paired_runs(tmp_path, deltas), "a", "b", "val/joint_f1")
    reference = stats.ttest_rel(
        [0.6 + d for d in deltas], [0.6] * len(deltas), alternative="greater"
    )
    assert row["n"] == 10 and row["ahead"] == 8
    assert row["t"] == pytest.approx(reference.statistic)
    assert row["p_one_sided"] == pytest.approx(reference.pvalue)
    # the final weights: the last validation point (here 0.01 below the selected one, both arms)
    last = paired_test.compare(_paired_runs(tmp_path, deltas), "a", "b", "last:val/joint_f1")
    assert last["mean"] == pytest.approx(row["mean"])
    assert paired_test.decide(row, min_pairs=8, alpha=0.05)[0]
    # the same gain on too few pairs is no decision; a gain within the noise is not adopted
    assert not paired_test.decide(row, min_pairs=11, alpha=0.05)[0]
    noisy = paired_test.compare(
        _paired_runs(tmp_path, [0.03, -0.03, 0.02, -0.02, 0.01, -0.005, 0.0, 0.004]),
        "a",
        "b",
        "val/joint_f1",
    )
    assert noisy["mean"] > 0 and not paired_test.decide(noisy, min_pairs=8, alpha=0.05)[0]


def test_a_run_on_two_corpora_is_compared_on_the_corpus_its_baseline_ran_on(tmp_path):
    """``--a-corpus cnc``: the joint run's CNC figures against the CNC-only run's totals, never
    its totals over both corpora."""
    joint = bench_protocol.CONFIGS["t2_with_because"]
    lines = [
        {"config": "default", "seed": 1, "returncode": 0, "overrides": [], "test/seq_f1": 0.82,
         "val_curve": [{"epoch": 9, "val/seq_f1": 0.84}]},
        {"config": "t2_with_because", "seed": 1, "returncode": 0, "overrides": joint,
         "test/seq_f1": 0.90, "test/cnc/seq_f1": 0.83,
         "val_curve": [{"epoch": 9, "val/seq_f1": 0.95, "val/cnc/seq_f1": 0.85}]},
    ]  # fmt: skip
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    runs = paired_test.read_records([str(tmp_path / "runs.jsonl")])

    def compare(key: str, corpus: str | None = "cnc") -> dict:
        return paired_test.compare(runs, "t2_with_because", "default", key, a_corpus=corpus)

    last = compare("last:val/seq_f1")
    assert last["key_a"] == "last:val/cnc/seq_f1" and last["deltas"] == [pytest.approx(0.01)]
    assert compare("test/seq_f1")["deltas"] == [pytest.approx(0.01)]
    with pytest.raises(SystemExit, match="compare them on one corpus"):
        compare("test/seq_f1", corpus=None)  # 0.90 over both corpora against 0.82 on CNC
    with pytest.raises(SystemExit, match="no per-corpus version"):
        compare("last:val/joint_f1")  # joint_f1 is logged over all corpora only
    with pytest.raises(SystemExit, match="no per-corpus version"):
        compare("test/because/seq_f1")
    with pytest.raises(SystemExit, match="record has no test/cnc/span_f1"):
        compare("test/span_f1")


def test_a_run_on_two_corpora_records_each_corpus_curve_and_test_figures(tmp_path):
    logs = tmp_path / "csv"
    logs.mkdir()
    (logs / "metrics.csv").write_text(
        "epoch,step,val/seq_f1,val/cnc/seq_f1,val/because/seq_f1,val/cnc/pair_f1,train/loss\n"
        "0,10,0.70,0.72,0.60,0.9,\n0,12,,,,,0.8\n"
    )
    assert bench_protocol.validation_curve(tmp_path) == [
        {"epoch": 0, "val/seq_f1": 0.70, "val/because/seq_f1": 0.60, "val/cnc/seq_f1": 0.72}
    ]  # val/cnc/pair_f1 is no per-corpus version of a curve key
    metrics = [
        "test/seq_f1",
        "test/cnc/seq_f1",
        "test/cnc/span_f1",
        "test/cnc/loss",
        "val/cnc/seq_f1",
    ]
    assert bench_protocol.per_corpus(metrics, bench_protocol.TEST_KEYS) == [
        "test/cnc/seq_f1",
        "test/cnc/span_f1",
    ]


def test_one_paired_difference_has_a_mean_but_no_spread_and_no_test():
    row = paired_test.paired_statistics([0.01])
    assert row == {"mean": 0.01, "std": 0.0, "ahead": 1, "t": None, "p_one_sided": None}


def test_a_file_of_runs_that_is_missing_or_not_json_is_refused_by_name(tmp_path):
    missing = tmp_path / "typo.jsonl"
    with pytest.raises(SystemExit, match=r"typo\.jsonl: no such file of runs"):
        bench_protocol.read_runs(missing)
    assert bench_protocol.read_runs(missing, missing_ok=True) == []  # an --out not written yet
    bad = tmp_path / "runs.jsonl"
    bad.write_text('{"config": "a", "seed": 1}\n\n{"config": "a", "seed": 2\n')
    with pytest.raises(SystemExit, match=r"runs.jsonl, line 3: not a JSON record"):
        bench_protocol.read_runs(bad)
    with pytest.raises(SystemExit, match=r"typo\.jsonl"):
        paired_test.read_records([str(bad.with_name("typo.jsonl"))])


def test_a_run_recorded_twice_is_refused(tmp_path):
    line = json.dumps(
        {"config": "a", "seed": 1, "returncode": 0, "val/joint_f1": 0.6, "overrides": []}
    )
    (tmp_path / "twice.jsonl").write_text(line + "\n" + line + "\n")
    with pytest.raises(SystemExit, match="recorded twice"):
        paired_test.read_records([str(tmp_path / "twice.jsonl")])


@pytest.mark.parametrize("config", sorted(bench_protocol.CONFIGS))
def test_every_protocol_config_is_a_valid_run_at_the_protocols_budget(config, tmp_path):
    """A config that today's defaults refuse (a warm-up in a sequence-only run, a CRF under the
    matched assignment) fails here rather than hours into a benchmark."""
    from causalmine.settings import TrainConfig

    from .conftest import compose_config

    overrides = [*bench_protocol.CONFIGS[config], "trainer.max_epochs=10", "seed=1"]
    TrainConfig.from_config(compose_config("train", overrides, tmp_path))


def test_bench_qualitys_own_systems_are_valid_runs_at_its_default_budget(tmp_path):
    from causalmine.settings import TrainConfig

    from .conftest import compose_config

    for system in ("unified", "seq_only", "span_only"):
        overrides = [
            *bench_quality.OUR_SYSTEMS[system],
            f"trainer.max_epochs={bench_quality.DEFAULTS['epochs']}",
        ]
        TrainConfig.from_config(compose_config("train", overrides, tmp_path))


def test_a_rerun_does_not_reuse_our_runs_made_under_other_defaults(tmp_path):
    """Records of ours keep the loss and optim values they trained with; one without them
    predates the defaults of RESULTS §8s and is run again, an HF baseline's run is kept."""
    import argparse

    args = argparse.Namespace(
        epochs=10, batch_size=8, data_root=str(tmp_path), accelerator="cpu", limit=None
    )
    today = bench_quality.our_recipe(bench_quality.our_config("unified", 1, args, tmp_path))
    assert today["optim"]["lr"] == 4.6e-5 and today["loss"]["seq_start_epoch"] == 3
    settings = {"epochs": 10, "lr": 1e-4, "batch_size": 8, "model": "m", "limit": None}
    old = [
        {"system": "unified", "seed": 1, **settings},  # before §8s: no recipe
        {"system": "unified", "seed": 2, **settings, "recipe": today},
        {"system": "hf_seq", "seed": 1, **settings},
        {"system": "hf_seq", "seed": 2, **settings, "epochs": 5},  # another budget
    ]
    other = json.loads(json.dumps(today))  # as read back from the records
    other["optim"]["lr"] = 1e-4
    old.append({"system": "unified", "seed": 3, **settings, "recipe": other})
    old.append(
        {"system": "unified", "seed": 4, **settings, "recipe": json.loads(json.dumps(today))}
    )
    # recorded before a key was added (loss.seq_label_smoothing, §8x): the same recipe
    predates = json.loads(json.dumps(today))
    del predates["loss"]["seq_label_smoothing"]
    old.append({"system": "unified", "seed": 5, **settings, "recipe": predates})
    # a value refused since it was recorded: another recipe, run again, not a crash
    refused = json.loads(json.dumps(today))
    refused["loss"]["span_assignment"] = "greedy"
    old.append({"system": "unified", "seed": 6, **settings, "recipe": refused})
    kept = bench_quality.reusable(old, settings, {"unified": today})
    assert set(kept) == {("unified", 2), ("unified", 4), ("unified", 5), ("hf_seq", 1)}
    # ... but a run recorded before the key is not one of a recipe that sets it
    smoothed = json.loads(json.dumps(today))
    smoothed["loss"]["seq_label_smoothing"] = 0.1
    assert ("unified", 5) not in bench_quality.reusable(old, settings, {"unified": smoothed})


def test_a_job_resumes_only_the_directory_it_left_itself(tmp_path):
    job = {"settings": {"epochs": 10}, "loss": {"seq_start_epoch": 3}}
    out_dir = tmp_path / "unified_seed1"
    assert not bench_quality.same_job(out_dir, job)  # new
    (out_dir / "checkpoints").mkdir()
    (out_dir / "checkpoints" / "last.ckpt").write_text("interrupted")
    assert bench_quality.same_job(out_dir, job)  # the same job: its checkpoint stays
    assert (out_dir / "checkpoints" / "last.ckpt").is_file()
    # the marker lacks the loss keys added since (seq_label_smoothing among them): at their
    # defaults it is still the same job, not at another value
    today = bench_quality.canonical_recipe(job)["loss"]
    assert bench_quality.same_job(out_dir, job | {"loss": today})
    assert (out_dir / "checkpoints" / "last.ckpt").is_file()
    assert not bench_quality.same_job(out_dir, job | {"loss": today | {"seq_label_smoothing": 0.1}})
    assert not (out_dir / "checkpoints" / "last.ckpt").exists()
    # a marker whose recipe no longer builds: cleared, not a crash
    (out_dir / "checkpoints").mkdir()
    (out_dir / "bench_quality_job.json").write_text(json.dumps(job | {"loss": {"alpha": -1}}))
    assert not bench_quality.same_job(out_dir, job)
    assert not (out_dir / "checkpoints").exists()
    assert not bench_quality.same_job(out_dir, job | {"settings": {"epochs": 5}})
    assert not (out_dir / "checkpoints").exists()  # another budget's checkpoint is gone


def test_runs_of_other_settings_do_not_pair(tmp_path):
    line = {"returncode": 0, "val/joint_f1": 0.6, "seed": 1}
    lines = [
        line | {"config": "default", "overrides": ["trainer.max_epochs=10"]},
        line | {"config": "levers_t2", "overrides": ["trainer.max_epochs=5"]},
    ]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    runs = paired_test.read_records([str(tmp_path / "runs.jsonl")])
    with pytest.raises(SystemExit, match="not a pair"):
        paired_test.compare(runs, "levers_t2", "default", "val/joint_f1")
    # an override declared equivalent is left out of the check
    runs = paired_test.read_records([str(tmp_path / "runs.jsonl")], ["trainer.max_epochs=5"])
    with pytest.raises(SystemExit, match="not a pair"):  # 10 is still not the default
        paired_test.compare(runs, "levers_t2", "default", "val/joint_f1")
    runs = paired_test.read_records(
        [str(tmp_path / "runs.jsonl")], ["trainer.max_epochs=5", "trainer.max_epochs=10"]
    )
    assert paired_test.compare(runs, "levers_t2", "default", "val/joint_f1")["n"] == 1


def test_runs_at_other_commits_pair_only_when_declared_to_train_alike(tmp_path):
    line = {"returncode": 0, "val/joint_f1": 0.6, "seed": 1, "overrides": []}
    lines = [line | {"config": "default", "commit": "aaa"}, line | {"config": "x", "commit": "bbb"}]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    runs = paired_test.read_records([str(tmp_path / "runs.jsonl")])
    with pytest.raises(SystemExit, match="ran at commits"):
        paired_test.compare(runs, "x", "default", "val/joint_f1")
    same = frozenset({"aaa", "bbb"})
    assert paired_test.compare(runs, "x", "default", "val/joint_f1", same)["n"] == 1


def test_decoding_settings_are_paired_by_checkpoint_against_the_default():
    """bench_decoding: each setting minus the default on the same checkpoint, with the paired
    t-test of §8t; a table a checkpoint lacks (its head never trained) leaves it out."""
    from scipy import stats

    heads, confident = [0.50, 0.55, 0.48, 0.53], [0.51, 0.56, 0.47, 0.55]
    measured = {
        f"c{i}": {
            split: {"span_f1_by_order": {"head": h, "confidence": c}} for split in ("val", "test")
        }
        for i, (h, c) in enumerate(zip(heads, confident, strict=True))
    }
    measured["seq_only"] = {"val": {}, "test": {}}
    row = bench_decoding.summarize(measured)["val/span_f1_by_order"]["confidence"]
    reference = stats.ttest_rel(confident, heads, alternative="greater")
    assert (row["of"], row["ahead"]) == (4, 3)
    assert row["mean"] == pytest.approx(0.0075)
    assert row["t"] == pytest.approx(reference.statistic)
    assert row["p_one_sided"] == pytest.approx(reference.pvalue)


def test_the_span_heads_say_in_the_sequence_decision_is_or_and_and_of_the_two_detectors():
    """bench_decoding (RESULTS §8v): a sentence is causal under ``or`` when the sequence head
    (probability > 0.5) or a complete decoded relation (a Cause and an Effect) says so, under
    ``and`` when both do; a cause alone is no relation; unlabelled rows are left out."""
    import torch

    # 5 sentences of 3 words, one span head: sentences 0 and 2 decode "cause effect O",
    # sentence 4 a cause alone
    ce = torch.full((5, 1, 3, 5), -5.0)
    ce[..., 0] = 5.0  # O everywhere ...
    cause = torch.tensor([-5.0, 5.0, -5.0, -5.0, -5.0])  # B-C
    effect = torch.tensor([-5.0, -5.0, -5.0, 5.0, -5.0])  # B-E
    for sentence in (0, 2):
        ce[sentence, 0, 0], ce[sentence, 0, 1] = cause, effect
    ce[4, 0, 0] = cause
    sig = torch.zeros(5, 1, 3, 3)
    sig[..., 0] = 5.0
    positions = [[0, 1, 2]] * 5
    probabilities = torch.tensor([0.9, 0.8, 0.2, 0.1, 0.1])
    labels = torch.tensor([1, 0, 1, 1, 1])
    rows = [(None, positions, probabilities, labels, ce, sig)]

    scores = bench_decoding.sequence_rule_scores(
        rows, bench_decoding.decode_rows(rows, 0.0, ("C", "E"))
    )

    # head: predicts 1,1,0,0,0 -> tp 1, fp 1, fn 3; or: 1,1,1,0,0 -> tp 2, fp 1, fn 2;
    # and: 1,0,0,0,0 -> tp 1, fp 0, fn 3
    assert scores["seq_precision_by_rule"] == pytest.approx({"head": 0.5, "or": 2 / 3, "and": 1.0})
    assert scores["seq_recall_by_rule"] == pytest.approx({"head": 0.25, "or": 0.5, "and": 0.25})
    assert scores["seq_f1_by_rule"] == pytest.approx({"head": 1 / 3, "or": 4 / 7, "and": 0.4})

    unlabelled = torch.tensor([1, 0, -100, 1, 1])
    rows = [(None, positions, probabilities, unlabelled, ce, sig)]
    without_third = bench_decoding.sequence_rule_scores(
        rows, bench_decoding.decode_rows(rows, 0.0, ("C", "E"))
    )
    assert without_third["seq_recall_by_rule"]["or"] == pytest.approx(1 / 3)


def test_a_decoding_summary_of_one_checkpoint_has_its_difference_and_no_test():
    measured = {"c": {s: {"seq_f1_by_rule": {"head": 0.80, "or": 0.81}} for s in ("val", "test")}}
    row = bench_decoding.summarize(measured)["val/seq_f1_by_rule"]["or"]
    assert row["mean"] == pytest.approx(0.01)
    assert (row["ahead"], row["of"], row["t"], row["p_one_sided"]) == (1, 1, None, None)


def test_the_speed_benchmark_trains_the_default_network_and_loss_past_the_warm_up(tmp_path):
    """bench_speed measures what ``python train.py`` computes in a step after the span warm-up:
    conf/train.yaml's network (with the backbone asked for) and loss, the sequence loss on."""
    from causalmine.settings import TrainConfig

    # a path with characters Hydra's override grammar would read as syntax
    network, loss = bench_speed.default_recipe("/models/a=b,c[1]")
    default = TrainConfig.from_config(compose_config("train", [], tmp_path))

    assert network.name_or_path == "/models/a=b,c[1]"
    assert network.to_dict() | {"name_or_path": None} == default.model.to_dict() | {
        "name_or_path": None
    }
    assert loss == default.loss.at_epoch(default.loss.seq_start_epoch)
    assert loss.alpha == default.loss.alpha > 0


def test_cause_effect_f1_leaves_signals_out_and_counts_a_wrong_cause():
    from causalmine.schema import Example, Relation, Span

    gold = Relation.from_spans([Span(3, 5, "C"), Span(0, 2, "E"), Span(2, 3, "S")])
    example = Example("1", "Prices rose because supply fell .", "d1", relations=[gold])
    no_signal = Relation.from_spans([Span(3, 5, "C"), Span(0, 2, "E")])
    wrong_cause = Relation.from_spans([Span(4, 5, "C"), Span(0, 2, "E")])
    assert bench_quality.span_ce_f1([example], [[gold]]) == 1.0
    assert bench_quality.span_ce_f1([example], [[no_signal]]) == 1.0
    assert bench_quality.span_ce_f1([example], [[wrong_cause]]) < 1.0


def _checkpoint(path, text: str) -> None:
    """A stand-in for a last.ckpt: a whole zip archive, as torch.save writes."""
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", text)


def test_a_job_that_exits_0_without_metrics_is_recorded_as_failed(tmp_path, monkeypatch):
    """A train.py stopped by SIGTERM at a commit before entry.py's status 143 exits 0 and writes
    nothing: recorded as a failure with the reason, not a crash of the whole queue."""
    import argparse
    import subprocess

    def stopped(command, **_):
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(bench_protocol.subprocess, "run", stopped)
    args = argparse.Namespace(work_dir=str(tmp_path), extra=[], threads=1)
    args.commit, args.code = "abc1234", "c0de"
    record = bench_protocol.run_job("default", 21, args)
    assert record["returncode"] == 1 and "no metrics.json" in record["error"]


def test_a_killed_protocol_job_resumes_its_own_run_directory_only(tmp_path, monkeypatch):
    import argparse
    import subprocess
    import zipfile

    commands = []

    def fake_train(command, **_):
        commands.append(command)
        return subprocess.CompletedProcess(command, 1, "", "killed")  # no figures to read

    monkeypatch.setattr(bench_protocol.subprocess, "run", fake_train)
    args = argparse.Namespace(work_dir=str(tmp_path), extra=["trainer.max_epochs=10"], threads=1)
    args.commit, args.code = "abc1234", "c0de"
    run_dir = tmp_path / "t2_warmup5_seed21"
    last = run_dir / "checkpoints" / "last.ckpt"

    def resumed() -> bool:
        return "ckpt_path=last" in commands[-1]

    first = bench_protocol.run_job("t2_warmup5", 21, args)
    assert not resumed() and first["attempt"] == 1 and "seconds_all_attempts" not in first
    _checkpoint(last, "epoch 4")  # killed after epoch 4

    again = bench_protocol.run_job("t2_warmup5", 21, args)  # the same job, rerun
    assert resumed() and f"hydra.run.dir={run_dir}" in commands[-1]
    assert again["run_id"] == first["run_id"] and again["attempt"] == 2
    assert zipfile.ZipFile(last).read("archive/data.pkl") == b"epoch 4"
    log = (run_dir / "bench_protocol.log").read_text()  # every attempt's, in order
    assert log.index("attempt 1: returncode 1") < log.index("attempt 2: returncode 1")
    both = first["seconds"] + again["seconds"]  # each runner timed its own attempt
    assert again["seconds_all_attempts"] == pytest.approx(both, abs=0.2)

    # a runner killed with its train.py records nothing: its attempt's time is read from the
    # last write to the run directory (here 100 s after the attempt's start)
    marker = bench_protocol.left_by(run_dir)
    bench_protocol.write_marker(run_dir, marker | {"ended": False})
    os.utime(last, (marker["started"] + 100, marker["started"] + 100))
    third = bench_protocol.run_job("t2_warmup5", 21, args)
    assert resumed() and third["attempt"] == 3
    all_three = both - again["seconds"] + 100 + third["seconds"]
    assert third["seconds_all_attempts"] == pytest.approx(all_three, abs=0.2)

    # a marker from before the start of an attempt was kept: the total is unknown, not guessed
    before = {
        k: v for k, v in bench_protocol.left_by(run_dir).items() if k not in ("started", "ended")
    }
    bench_protocol.write_marker(run_dir, before)
    fourth = bench_protocol.run_job("t2_warmup5", 21, args)
    assert fourth["attempt"] == 4 and "seconds_all_attempts" not in fourth

    for change in ("commit", "code"):  # the same config and seed at another commit, or code
        setattr(args, change, getattr(args, change) + "'")
        other = bench_protocol.run_job("t2_warmup5", 21, args)
        assert not resumed() and not last.exists() and other["run_id"] != first["run_id"]
        assert other["attempt"] == 1
        _checkpoint(last, "epoch 4")
    upgraded = {**bench_protocol.library_versions(), "torch": "0.0"}
    monkeypatch.setattr(bench_protocol, "library_versions", lambda: upgraded)
    other = bench_protocol.run_job("t2_warmup5", 21, args)  # another torch: another job
    assert not resumed() and other["libraries"]["torch"] == "0.0"
    _checkpoint(last, "epoch 4")

    last.write_bytes(last.read_bytes()[:-30])  # cut short as a full disk would leave it
    broken = bench_protocol.run_job("t2_warmup5", 21, args)
    assert not resumed() and broken["run_id"] != other["run_id"]

    _checkpoint(last, "epoch 9")
    (run_dir / "metrics.json").write_text("{}")  # it finished: a rerun starts afresh
    rerun = bench_protocol.run_job("t2_warmup5", 21, args)
    assert not resumed() and rerun["run_id"] != broken["run_id"]
    assert not (run_dir / "metrics.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kill", "where"),
    [
        (["KillAtStep", "+callbacks.kill.step=4"], "4"),  # in epoch 2
        (["KillAtTest"], "test"),  # after the fit: nothing left to train, the test to run
        # the same with an average of the weights: the resumed fit, with nothing to train, still
        # ends by putting the average in the module, so the test scores it, not the raw weights
        (["KillAtTest", "callbacks=ema", "callbacks.weight_averaging.decay=0.5"], "test"),
    ],
)
def test_a_killed_protocol_job_resumes_to_the_record_of_one_never_stopped(
    tmp_path, data_root, kill, where
):
    """Through train.py: a job SIGKILLed, run again, resumes from its last.ckpt and records what
    the same job run without a stop records."""
    import argparse

    marker = tmp_path / "killed"
    callback, *kill_options = kill
    extra = [
        "model=tiny_bert",
        f"data.root={data_root}",
        "data.limit_examples=48",
        "data.batch_size=8",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=3",  # epochs end at steps 3, 6 and 9
        "loss.seq_start_epoch=0",
        "trainer.deterministic=true",
        "trainer.enable_progress_bar=false",
        "test_checkpoint=last",
        f"+callbacks.kill._target_=tests.interrupt.{callback}",
        *kill_options,
        f"+callbacks.kill.marker={marker}",
    ]

    def run(work: str) -> dict:
        args = argparse.Namespace(work_dir=str(tmp_path / work), extra=extra, threads=1)
        args.commit, args.code = "abc1234", bench_protocol.code_digest()
        return bench_protocol.run_job("default", 1, args)

    killed = run("stopped")
    assert killed["returncode"] == -9 and killed["attempt"] == 1 and marker.read_text() == where
    resumed = run("stopped")
    assert resumed["returncode"] == 0, resumed
    assert (resumed["run_id"], resumed["attempt"]) == (killed["run_id"], 2)
    assert resumed["seconds_all_attempts"] > resumed["seconds"]  # the killed attempt's time too
    # the log of the killed attempt was set aside by the resume, not deleted
    assert (
        tmp_path / "stopped" / "default_seed1" / "csv" / "metrics-before-resume-1.csv"
    ).is_file()
    never_stopped = run("never_stopped")  # the marker is there: this one trains on
    assert never_stopped["returncode"] == 0 and never_stopped["attempt"] == 1

    def figures(record: dict) -> dict:
        return {k: v for k, v in record.items() if k.startswith(("val", "test/", "best_"))}

    assert [row["epoch"] for row in resumed["val_curve"]] == [0, 1, 2]
    assert figures(resumed) == figures(never_stopped) and len(figures(resumed)) > 20


def test_a_protocol_job_another_process_is_running_is_skipped(tmp_path, monkeypatch):
    import argparse
    import fcntl

    monkeypatch.setattr(bench_protocol.subprocess, "run", pytest.fail)  # never started
    args = argparse.Namespace(work_dir=str(tmp_path), extra=[], threads=1, commit="a", code="c")
    with open(tmp_path / "default_seed1.lock", "w") as held:  # the other runner's (or train.py's)
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert bench_protocol.run_job("default", 1, args) is None
    assert not (tmp_path / "default_seed1").exists()  # its directory was not touched


def test_a_protocol_job_given_twice_is_refused(tmp_path, monkeypatch, capsys):
    argv = ["bench_protocol.py", "--jobs", "default:1", "t2_warmup5:1", "default:1"]
    monkeypatch.setattr(sys, "argv", [*argv, "--work-dir", str(tmp_path)])
    monkeypatch.setattr(bench_protocol, "commit", lambda: "abc1234")
    with pytest.raises(SystemExit):
        bench_protocol.main()
    assert "['default:1'] given twice" in capsys.readouterr().err

    monkeypatch.setattr(sys, "argv", [*argv[:2], "default:2", "span_weight=2"])
    with pytest.raises(SystemExit):  # an override after --jobs is taken as a job
        bench_protocol.main()
    assert "CONFIG:SEED, got ['span_weight=2']" in capsys.readouterr().err


def test_recording_jobs_under_another_commit_than_they_ran_at_is_refused(
    tmp_path, monkeypatch, capsys
):
    runs = {1: ("abc1234", []), 2: ("def5678", []), 3: ("abc1234", ["span_weight=2"])}
    for seed, (ran_at, overrides) in runs.items():
        run_dir = tmp_path / f"default_seed{seed}"
        (run_dir / ".hydra").mkdir(parents=True)
        (run_dir / ".hydra" / "config.yaml").write_text("seed: 1\n")
        marker = {"commit": ran_at, "overrides": overrides}
        (run_dir / bench_protocol.JOB_MARKER).write_text(json.dumps(marker))
    out = tmp_path / "runs.jsonl"
    argv = ["bench_protocol.py", "--work-dir", str(tmp_path), "--out", str(out), "--jobs"]
    jobs = ["default:1", "default:2", "default:3", "default:4"]  # seed 4 never ran here
    monkeypatch.setattr(sys, "argv", [*argv, *jobs, "--record", "abc1234"])
    with pytest.raises(SystemExit):
        bench_protocol.main()
    refused = capsys.readouterr().err
    assert "'default:2': 'it ran at def5678'" in refused and "'default:1'" not in refused
    assert "'default:3': \"it ran with the overrides ['span_weight=2']\"" in refused
    assert "'default:4'" in refused and "holds no run" in refused
    assert not out.exists()  # nothing recorded, not even the one that could be

    monkeypatch.setattr(sys, "argv", [*argv, "default:1", "--record", "abc1234"])
    bench_protocol.main()  # unfinished (no metrics.json): recorded as a failed run, at its commit
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (record["commit"], record["returncode"]) == ("abc1234", 1)


def test_a_resumed_runs_validation_curve_joins_its_attempts_logs(tmp_path):
    logs = tmp_path / "csv"
    logs.mkdir()
    header = "epoch,step,val/joint_f1,val/seq_f1,train/loss\n"
    # the first attempt validated epochs 0-2; the second resumed from the checkpoint of epoch 1
    (logs / "metrics-before-resume-1.csv").write_text(
        header + "0,10,0.50,0.70,\n0,12,,,0.9\n1,20,0.55,0.72,\n2,30,0.58,0.74,\n"
    )
    (logs / "metrics.csv").write_text(header + "2,30,0.59,0.75,\n3,40,0.60,0.76,\n")
    curve = bench_protocol.validation_curve(tmp_path)
    assert [row["epoch"] for row in curve] == [0, 1, 2, 3]
    assert curve[2] == {"epoch": 2, "val/joint_f1": 0.59, "val/seq_f1": 0.75}  # the last attempt's
    # killed after training, before the test: the resume validates the final weights once more,
    # as epoch 4 of a 4-epoch budget, an epoch that never trained
    (logs / "metrics-before-resume-2.csv").write_text((logs / "metrics.csv").read_text())
    (logs / "metrics.csv").write_text(header + "4,41,0.61,0.76,\n")
    assert [row["epoch"] for row in bench_protocol.validation_curve(tmp_path)] == [0, 1, 2, 3, 4]
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("seed: 1\ntrainer:\n  max_epochs: 4\n")
    assert [row["epoch"] for row in bench_protocol.validation_curve(tmp_path)] == [0, 1, 2, 3]
    # the logs a resume set aside are read in the order they were written, 10 after 2
    (logs / "metrics-before-resume-10.csv").write_text(header)
    assert [p.name for p in bench_protocol.csv_logs(logs)] == [
        "metrics-before-resume-1.csv",
        "metrics-before-resume-2.csv",
        "metrics-before-resume-10.csv",
        "metrics.csv",
    ]


def _scored_run(tmp_path, record_id: str | None, left: dict | None) -> dict:
    """A bench_protocol record (with run id ``record_id``) whose run directory holds a
    last.ckpt and the marker ``left`` (``None``: no id, no marker)."""
    run_dir = tmp_path / "t2_seed1"
    _checkpoint(run_dir / "checkpoints" / "last.ckpt", "weights")
    if left is not None:
        (run_dir / bench_protocol.JOB_MARKER).write_text(json.dumps(left))
    record = _protocol_record("t2", 1, span_f1=0.5) | {"run_dir": str(run_dir)}
    return record if record_id is None else record | {"run_id": record_id}


@pytest.mark.parametrize(
    ("record_id", "left", "says"),
    [
        ("first", {"run_id": "later"}, "run id later; this record's: first"),
        ("first", None, "run id none; this record's: first"),  # cleared and rerun by old code
        (None, {"run_id": "later"}, "run id later; this record's: none"),  # an older record
    ],
)
def test_cause_effect_f1_is_not_read_from_a_run_directory_reused_since_the_record(
    tmp_path, record_id, left, says
):
    import argparse

    record = _scored_run(tmp_path, record_id, left)
    with pytest.raises(SystemExit, match=rf"t2 seed 1: .*another run \({says}\)"):
        bench_quality.protocol_cause_effect(record, argparse.Namespace(span_ce="model"))


@pytest.mark.parametrize(
    ("record_id", "left"),
    [("first", {"run_id": "first"}), (None, None)],  # its own run; a record and a directory
    # from before run ids, which no run has reused since (it would have left a marker)
)
def test_cause_effect_f1_is_read_from_a_run_directory_that_holds_the_records_run(
    tmp_path, monkeypatch, record_id, left
):
    import argparse

    import causalmine.checkpoints

    record = _scored_run(tmp_path, record_id, left)
    monkeypatch.setattr(causalmine.checkpoints, "load_module", lambda path: path)
    monkeypatch.setattr(
        bench_quality, "cause_effect_figures", lambda module, *_: {"span_ce_f1": module}
    )
    scored = bench_quality.protocol_cause_effect(record, argparse.Namespace(span_ce="model"))
    assert scored == {"span_ce_f1": Path(record["run_dir"]) / "checkpoints" / "last.ckpt"}


def test_a_protocol_runs_cause_effect_f1_comes_from_its_final_weights(
    tmp_path, trained_checkpoint, data_root, monkeypatch
):
    import argparse

    from causalmine.checkpoints import load_module
    from causalmine.inference import bundle

    built = []  # the decoding each Predictor is built with

    class Spy(bundle.Predictor):
        def __init__(self, *args, **options):
            built.append(options)
            super().__init__(*args, **options)

    monkeypatch.setattr(bundle, "Predictor", Spy)
    run_dir = tmp_path / "levers_seed1"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").symlink_to(trained_checkpoint)
    (run_dir / bench_protocol.JOB_MARKER).write_text(json.dumps({"run_id": "r1"}))
    runs = tmp_path / "runs.jsonl"
    records = [
        _protocol_record("levers", 1, "optim.lr=4.6e-5", span_f1=0.5)
        | {"run_dir": str(run_dir), "run_id": "r1"},  # the directory still holds this run
        # a sequence-only run has no trained span heads to score, and its directory is not read
        _protocol_record("seq", 1, "span_weight=0", seq_f1=0.8)
        | {"run_dir": str(tmp_path / "gone")},
    ]
    runs.write_text("".join(json.dumps(r) + "\n" for r in records))
    settings = argparse.Namespace(device="cpu", data_root=str(data_root), limit=40, span_ce="model")
    module = load_module(trained_checkpoint)
    trained_decoding = {
        "decode_method": module.decode_method,
        "required_kinds": tuple(module.required_kinds),
        "force_relation": module.force_relation,
        "relation_order": module.relation_order,
    }
    assert trained_decoding["decode_method"] == "viterbi"  # the Predictor's own default is argmax

    levers, seq = bench_quality.runs_to_summarize([str(runs)], [], settings)
    assert levers["system"] == "unified[levers]" and 0.0 <= levers["span_ce_f1"] <= 1.0
    assert levers["span_ce_decoding"] == "viterbi"
    used = {k: built[-1][k] for k in trained_decoding}
    used["required_kinds"] = tuple(used["required_kinds"])
    assert used == trained_decoding  # as training's own test pass decodes
    assert seq["system"] == "seq_only[seq]" and "span_ce_f1" not in seq
    assert len(built) == 1
    assert "span_ce_f1" not in bench_quality.runs_to_summarize([str(runs)], [])[0]

    settings.span_ce = "argmax"  # --span-ce argmax: read another way than the model decodes
    levers_argmax = bench_quality.runs_to_summarize([str(runs)], [], settings)[0]
    assert levers_argmax["span_ce_decoding"] == built[-1]["decode_method"] == "argmax"

    (run_dir / "checkpoints" / "last.ckpt").unlink()  # the final weights deleted since
    with pytest.raises(SystemExit, match=r"last\.ckpt not found"):
        bench_quality.runs_to_summarize([str(runs)], [], settings)


def test_our_cause_effect_figures_pair_only_when_decoded_alike():
    old = _run("span_only", 1, span_ce_f1=0.46)  # recorded before the decoding was: argmax
    viterbi = _run("unified[t2]", 1, span_ce_f1=0.52, span_ce_decoding="viterbi", lever="x")
    argmax = _run("unified[t2]", 1, span_ce_f1=0.48, span_ce_decoding="argmax", lever="x")
    token = _run("hf_token", 1, span_ce_f1=0.41)
    for lever, against_span_only in ((viterbi, False), (argmax, True)):
        baselines = {
            r["baseline"]
            for r in bench_quality.paired_differences([old, lever, token], "unified[t2]")
            if r["column"] == "span_ce_f1"
        }
        # hf_token decodes its own way: a system-against-system comparison either way
        assert baselines == ({"hf_token", "span_only"} if against_span_only else {"hf_token"})


def test_hf_token_pairs_with_ours_either_way_and_the_row_says_how_each_was_read():
    ours = _run("unified", 1, span_ce_f1=0.52, span_ce_decoding="viterbi")
    token = _run("hf_token", 1, span_ce_f1=0.41)
    (row,) = [
        r for r in bench_quality.paired_differences([ours, token]) if r["baseline"] == "hf_token"
    ]
    assert row["span_ce_decoding"] == ["viterbi", "hf_token"]
    assert "(read: viterbi − hf_token)" in bench_quality.differences_markdown([row])
    assert bench_quality.comparable(token, ours, "span_ce_f1")


def test_a_system_whose_cause_effect_figures_were_read_two_ways_is_named():
    old = _run("unified", 1, span_ce_f1=0.45)  # recorded before span_ce_decoding: argmax
    new = _run("unified", 2, span_ce_f1=0.52, span_ce_decoding="viterbi")
    token = _run("hf_token", 1, span_ce_f1=0.41)
    assert "unified" in bench_quality.mixed_ce_decodings([old, new, token])
    assert bench_quality.mixed_ce_decodings([new, token]) == ""


def test_a_crf_model_is_not_read_by_argmax_for_its_cause_effect_figure():
    import argparse
    from types import SimpleNamespace

    from causalmine.settings import ConfigError

    crf = SimpleNamespace(network=SimpleNamespace(config=SimpleNamespace(span_crf=True)))
    crf.decode_method = "viterbi"
    with pytest.raises(ConfigError, match=r"CRF span heads.*got 'argmax'"):
        bench_quality.cause_effect_figures(
            crf, argparse.Namespace(span_ce="argmax"), "levers seed 1"
        )
    assert crf.decode_method == "viterbi"  # refused before the module was changed


def test_a_protocol_job_already_recorded_is_skipped_unless_rerun(tmp_path, monkeypatch, capsys):
    """A queue's command given again after an interruption runs only what --out lacks: a job
    recorded there successfully at this commit, code and overrides is skipped; a failed record,
    or one of another commit or other overrides, is not; --rerun runs every job."""
    monkeypatch.setattr(bench_protocol, "commit", lambda: "abc1234")
    monkeypatch.setattr(bench_protocol, "code_digest", lambda: "c0de")
    monkeypatch.setattr(bench_protocol, "library_versions", lambda: {"torch": "2.13.0"})
    ran = []
    monkeypatch.setattr(bench_protocol, "run_job", lambda config, seed, args: ran.append(seed))
    out = tmp_path / "runs.jsonl"
    job = {"config": "default", "overrides": ["trainer.max_epochs=10"], "commit": "abc1234"}
    records = [
        {**job, "seed": 1, "returncode": 0, "code": "c0de", "run_id": "r1"},
        {**job, "seed": 2, "returncode": 1, "code": "c0de"},  # failed: run again
        {**job, "seed": 3, "returncode": 0, "commit": "def5678"},  # another commit
        {**job, "seed": 4, "returncode": 0, "overrides": []},  # other overrides
        {**job, "seed": 5, "returncode": 0, "code": "other"},  # other code at the same commit
        {**job, "seed": 6, "returncode": 0},  # from before code digests: the commit decides
    ]
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    argv = ["bench_protocol.py", "--work-dir", str(tmp_path), "--out", str(out), "--parallel", "1"]
    jobs = ["trainer.max_epochs=10", "--jobs", *(f"default:{seed}" for seed in range(1, 8))]
    monkeypatch.setattr(sys, "argv", [*argv, *jobs])
    bench_protocol.main()
    assert ran == [2, 3, 4, 5, 7]
    said = capsys.readouterr().out
    assert "default:1: already recorded" in said and "run id r1" in said
    assert "default:6: already recorded" in said and "default:2: already" not in said

    ran.clear()
    monkeypatch.setattr(sys, "argv", [*argv, *jobs, "--rerun"])
    bench_protocol.main()
    assert ran == [1, 2, 3, 4, 5, 6, 7]
