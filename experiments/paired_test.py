"""Paired comparison of two ``bench_protocol.py`` configurations, seed by seed, with a t-test.

    # the pre-registered decision of RESULTS §8s: levers_t2 against the default on validation
    python experiments/paired_test.py experiments/results/gpu_levers_t2_seeds11_20_runs.jsonl \\
        --a levers_t2 --b default --decide val/joint_f1 --min-pairs 8
    # reported figures: test at the final weights, the per-task ablations as baselines
    python experiments/paired_test.py RUNS.jsonl … --a levers_t2 --b span_only --keys test/span_f1

For each key: the differences d_s = a − b on the seeds both configurations finished, their mean
± std, how many seeds ``a`` is ahead on, the paired t statistic mean / (std / √n) and its
one-sided p-value (H1: a > b). ``last:<key>`` reads a validation key at the final weights (the
last point of the run's validation curve); other keys read the record (validation at the
selected checkpoint, test at the tested weights). ``--a-corpus cnc`` reads ``a``'s figures for
CNC alone (``val/cnc/seq_f1``…), for ``a`` trained on CNC and another corpus against ``b`` on
CNC only. ``--decide KEY`` applies the rule fixed in
§8s before its runs: adopt ``a`` iff there are at least ``--min-pairs`` pairs, mean > 0 and the
one-sided p < ``--alpha``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from bench_protocol import by_config_and_seed, read_runs, shared_setting, without_overrides
from scipy import stats


def read_records(paths: list[str], equivalent: list[str] = ()) -> dict[tuple[str, int], dict]:
    """The successful runs of the JSONL files by (config, seed), less the ``equivalent``
    overrides (``--equivalent``); a run recorded twice is an error
    (``bench_protocol.by_config_and_seed``), a failed one is named and left out."""
    records = [record for path in paths for record in read_runs(Path(path))]
    for r in records:
        if r["returncode"] != 0:
            print(f"{r['config']} seed {r['seed']} failed (left out)")
    return by_config_and_seed(
        without_overrides([r for r in records if r["returncode"] == 0], list(equivalent))
    )


def value(record: dict, key: str) -> float:
    if key.startswith("last:"):
        return record["val_curve"][-1][key.removeprefix("last:")]
    return record[key]


def has(record: dict, key: str) -> bool:
    """Whether :func:`value` can read ``key`` from ``record``."""
    if key.startswith("last:"):
        return (
            bool(record.get("val_curve")) and key.removeprefix("last:") in record["val_curve"][-1]
        )
    return key in record


def in_corpus(key: str, corpus: str | None) -> str:
    """``key`` read for one corpus of a run on several: ``last:val/seq_f1`` →
    ``last:val/cnc/seq_f1`` (``corpus`` None: ``key`` itself). Only a stage's own metrics have
    per-corpus versions: ``joint_f1``, the run's bookkeeping (``seconds``…) and keys already of
    one corpus are refused."""
    if corpus is None:
        return key
    last, colon, name = key.partition(":") if key.startswith("last:") else ("", "", key)
    stage, _, metric = name.partition("/")
    if stage not in ("val", "test") or not metric or "/" in metric or metric == "joint_f1":
        raise SystemExit(
            f"--a-corpus {corpus}: {key!r} has no per-corpus version (those are "
            "[last:]val/<metric> and test/<metric>; joint_f1 is logged over all corpora only)"
        )
    return f"{last}{colon}{stage}/{corpus}/{metric}"


def data_of(record: dict) -> list[str]:
    """The overrides that choose a run's data (``data=…``, ``data.corpora=…``)."""
    return sorted(o for o in record.get("overrides", []) if o.startswith(("data=", "data.corpora")))


def compare(
    runs: dict[tuple[str, int], dict],
    a: str,
    b: str,
    key: str,
    same_code: frozenset = frozenset(),
    a_corpus: str | None = None,
) -> dict:
    """The paired differences ``a − b`` on ``key`` and their one-sided t-test. Runs pair only
    when their settings beyond their configs' own agree (budget, precision, device: see
    ``bench_protocol.shared_setting``) and they ran at one commit, or at commits declared to
    train alike (``same_code``: a config is a set of overrides on its commit's defaults).
    ``a_corpus``: ``a`` trained on several corpora; its figures for that one (:func:`in_corpus`)
    are compared with ``b``'s on that corpus alone. Without it, runs on other data do not pair.
    (A figure at a selected checkpoint, ``val/…`` or a ``test/…`` of ``test_checkpoint=best``,
    is then at the checkpoint ``a`` selected on its ``val/joint_f1`` over all its corpora.)"""
    key_a = in_corpus(key, a_corpus)
    seeds = sorted(s for c, s in runs if c == a and (b, s) in runs)
    for seed in seeds:
        if a_corpus is None and data_of(runs[a, seed]) != data_of(runs[b, seed]):
            raise SystemExit(
                f"seed {seed}: {a} trained on {data_of(runs[a, seed]) or 'the default data'}, "
                f"{b} on {data_of(runs[b, seed]) or 'the default data'}: their totals are over "
                "other examples; compare them on one corpus (--a-corpus NAME)"
            )
        if not has(runs[a, seed], key_a):
            raise SystemExit(f"seed {seed}: {a}'s record has no {key_a}")
        commits = {runs[a, seed].get("commit"), runs[b, seed].get("commit")}
        if len(commits) > 1 and not commits <= same_code:
            raise SystemExit(
                f"seed {seed}: {a} and {b} ran at commits {sorted(map(str, commits))}: not a "
                "pair unless they train alike (--same-code COMMIT...)"
            )
        mine, theirs = shared_setting(runs[a, seed]), shared_setting(runs[b, seed])
        if mine != theirs:
            raise SystemExit(
                f"seed {seed}: {a} ran with {mine}, {b} with {theirs}: not a pair (name "
                "overrides that set what the other ran with anyway in --equivalent)"
            )
    deltas = [value(runs[a, s], key_a) - value(runs[b, s], key) for s in seeds]
    row: dict = {"key": key, "a": a, "b": b, "seeds": seeds, "n": len(deltas), "deltas": deltas}
    if key_a != key:
        row["key_a"] = key_a
    if len(deltas) >= 2:
        row |= paired_statistics(deltas) | {
            "mean_a": statistics.mean(value(runs[a, s], key_a) for s in seeds),
            "mean_b": statistics.mean(value(runs[b, s], key) for s in seeds),
        }
    return row


def paired_statistics(deltas: list[float]) -> dict:
    """Mean, std, how many are ahead (> 0), and the one-sided paired t-test of ``deltas``
    (paired differences, A − B) that A is better; one difference has no spread and no test."""
    mean = statistics.mean(deltas)
    std = statistics.stdev(deltas) if len(deltas) > 1 else 0.0
    if len(deltas) == 1:
        t, p = None, None
    elif std > 0:
        t: float | None = mean / (std / math.sqrt(len(deltas)))
        p = float(stats.t.sf(t, len(deltas) - 1))
    else:  # every pair the same difference: no t (JSON has no infinity)
        t, p = None, 0.0 if mean > 0 else 1.0
    return {"mean": mean, "std": std, "ahead": sum(d > 0 for d in deltas), "t": t, "p_one_sided": p}


def decide(row: dict, min_pairs: int, alpha: float) -> tuple[bool, str]:
    """The rule of RESULTS §8s: adopt iff n ≥ ``min_pairs``, mean > 0 and one-sided p < alpha."""
    if row["n"] < max(min_pairs, 2):
        return False, f"no decision: {row['n']} pairs, fewer than {max(min_pairs, 2)}"
    critical = float(stats.t.ppf(1 - alpha, row["n"] - 1))
    adopt = row["mean"] > 0 and row["p_one_sided"] < alpha
    verdict = "adopt" if adopt else "do not adopt"
    t = "no spread" if row["t"] is None else f"{row['t']:.3f}"
    return adopt, (
        f"{verdict} {row['a']}: t = {t} against t_crit({1 - alpha:.2f}, "
        f"{row['n'] - 1}) = {critical:.3f}, one-sided p = {row['p_one_sided']:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="bench_protocol.py JSONL records")
    parser.add_argument("--a", required=True, help="the configuration tested")
    parser.add_argument("--b", required=True, help="the baseline configuration")
    parser.add_argument("--keys", nargs="*", default=[], help="keys to report")
    parser.add_argument("--decide", metavar="KEY", help="apply the decision rule to this key")
    parser.add_argument("--min-pairs", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument(
        "--equivalent",
        nargs="+",
        default=[],
        metavar="OVERRIDE",
        help="overrides left out of the pairing check (as bench_protocol.py --summarize)",
    )
    parser.add_argument(
        "--same-code",
        nargs="+",
        default=[],
        metavar="COMMIT",
        help="commits whose runs pair: their training code and defaults are the same",
    )
    parser.add_argument(
        "--a-corpus",
        metavar="CORPUS",
        help="--a trained on several corpora: compare its figures for this one (val/CORPUS/seq_f1…)",
    )
    parser.add_argument("--out", help="write the rows (and the decision) as JSON here")
    args = parser.parse_args()
    runs = read_records(args.runs, args.equivalent)
    keys = [*([args.decide] if args.decide else []), *args.keys]
    if not keys:
        parser.error("name --decide KEY or --keys")
    rows = [
        compare(runs, args.a, args.b, key, frozenset(args.same_code), args.a_corpus) for key in keys
    ]
    print(
        f"| {args.a} − {args.b} | seeds | {args.a} | {args.b} | difference | ahead | t | p (one-sided) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        name = f"{row['key']} (a: {row['key_a']})" if "key_a" in row else row["key"]
        if row["n"] < 2:
            print(f"| {name} | {row['n']} pairs | – | – | – | – | – | – |")
            continue
        print(
            f"| {name} | {row['n']} | {row['mean_a']:.4f} | {row['mean_b']:.4f} | "
            f"{row['mean']:+.4f} ± {row['std']:.4f} | {row['ahead']}/{row['n']} | "
            f"{'–' if row['t'] is None else format(row['t'], '+.2f')} | {row['p_one_sided']:.4f} |"
        )
    result: dict = {
        "runs": args.runs,
        "equivalent": args.equivalent,
        "same_code": args.same_code,
        "a_corpus": args.a_corpus,
        "rows": rows,
    }
    if args.decide:
        adopt, line = decide(rows[0], args.min_pairs, args.alpha)
        read = f"{args.decide} (a: {rows[0]['key_a']})" if "key_a" in rows[0] else args.decide
        print(f"\ndecision on {read} (≥ {args.min_pairs} pairs, α = {args.alpha}): {line}")
        result["decision"] = {"key": args.decide, "adopt": adopt, "verdict": line}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
