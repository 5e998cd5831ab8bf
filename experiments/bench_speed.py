"""Speed and memory: our batching (dynamic padding, length-grouped) against padding to max_length.

    python experiments/bench_speed.py                       # CPU here: fp32
    python experiments/bench_speed.py --device cuda --bf16  # on a GPU: fp32 and bf16 autocast
    python experiments/bench_speed.py --device cuda --bf16 --systems dynamic --batch-size 8 16 32
    python experiments/bench_speed.py --systems dynamic pcgrad   # the cost of gradient surgery

The same model is fed the same CNC training sentences at the same batch size: the network and the
loss of ``python train.py`` (conf/train.yaml's ``model`` and ``loss`` sections, the loss past the
span warm-up, so every task trains; ``--model`` sets the backbone; runs before commit ed3789f
trained ``LossWeights()``: ordered heads, span weight 1, no matching), (a) the way our datamodule
batches them (padded per batch, grouped by length) and (b) padded to a fixed ``max_length`` (128
and 256), as the Hugging Face example scripts do by default. System ``pcgrad`` batches as (a) and
trains with ``loss.gradient_surgery=pcgrad``'s backward pass (one per task). Training = forward +
loss + backward + AdamW step; prediction = forward under ``inference_mode`` (our predictor sorts by
length, the baseline keeps input order). Each (system, repetition) runs in a fresh subprocess,
systems interleaved, so peak memory is per system; the table gives medians and the ratio to (a). On
a GPU with ``--bf16`` the MFU column divides the useful backbone FLOP/s by ``--peak-tflops``, or,
when that is not given, by the rate of a bare 8192³ bf16 matrix product measured on the same device
at start (the achievable peak).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# pcgrad: our batching, with the backward pass of loss.gradient_surgery=pcgrad
SYSTEMS = ("dynamic", "pad128", "pad256", "pcgrad")
PADDED = {"pad128": 128, "pad256": 256}


def _measure(system: str, args: argparse.Namespace) -> dict:
    """One repetition of one system, in this process."""
    import torch

    from causalmine.data.collate import CausalCollator
    from causalmine.data.corpora import load_cnc
    from causalmine.data.encoding import encode_example
    from causalmine.model.backbone import BackboneSpec, load_tokenizer
    from causalmine.model.gradient_surgery import pcgrad_backward, trained_terms
    from causalmine.model.losses import unified_loss
    from causalmine.model.network import CausalNetwork

    torch.manual_seed(0)
    device = torch.device(args.device)
    batch_size = args.batch_size[0]
    network_config, loss_weights = default_recipe(args.model)
    tokenizer = load_tokenizer(BackboneSpec(args.model))
    network = CausalNetwork(replace(network_config, vocab_size=len(tokenizer))).to(device)
    examples = load_cnc(args.data_root, download=False).train
    examples = random.Random(0).sample(examples, args.batches * batch_size)
    max_length = PADDED.get(system, 256)
    items = [encode_example(e, tokenizer, max_length, network_config.span_heads) for e in examples]
    collator = CausalCollator(tokenizer)
    if system not in PADDED:
        # our datamodule: length-grouped mega-batches, padded per batch
        from transformers.trainer_pt_utils import LengthGroupedSampler

        order = list(
            LengthGroupedSampler(
                batch_size,
                lengths=[len(i.input_ids) for i in items],
                generator=torch.Generator().manual_seed(0),
            )
        )
        predict_order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    else:
        order = predict_order = list(range(len(items)))

    def batches(indices: list[int]) -> list[dict]:
        out = []
        for start in range(0, len(indices), batch_size):
            batch = collator([items[i] for i in indices[start : start + batch_size]])
            if system in PADDED:
                batch = _pad_to(batch, max_length, tokenizer.pad_token_id)
            out.append({k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()})
        return out

    train_batches, predict_batches = batches(order), batches(predict_order)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-5)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)

    parameters = [p for p in network.parameters() if p.requires_grad]

    def train_step(batch: dict) -> None:
        with autocast:
            out = network(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
            losses = unified_loss(
                out.seq_logits,
                out.pair_logits,
                out.cause_effect_logits,
                out.signal_logits,
                batch,
                loss_weights,
                crf_scores=network.span_heads.crf_scores(),
            )
        trained, silent = trained_terms(losses) if system == "pcgrad" else ({}, None)
        if len(trained) > 1:  # as CausalLitModule.backward does
            pcgrad_backward(trained, parameters, lambda term: term, silent=silent)
        else:
            losses.total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    network.train()
    for batch in train_batches[: args.warmup]:
        train_step(batch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    for batch in train_batches:
        train_step(batch)
    sync()
    train_seconds = time.perf_counter() - start
    train_peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None

    network.eval()
    with torch.inference_mode(), autocast:
        for batch in predict_batches[: args.warmup]:
            network(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        sync()
        start = time.perf_counter()
        for batch in predict_batches:
            network(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        sync()
        predict_seconds = time.perf_counter() - start

    samples = len(items)
    real_tokens = sum(len(i.input_ids) for i in items)
    padded_tokens = sum(b["input_ids"].numel() for b in train_batches)
    backbone_params = sum(
        p.numel() for n, p in network.backbone.named_parameters() if "embeddings" not in n
    )
    result = {
        "system": system,
        "batch_size": batch_size,
        "train_samples_per_s": samples / train_seconds,
        "predict_samples_per_s": samples / predict_seconds,
        "real_tokens": real_tokens,
        "padded_tokens": padded_tokens,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cuda_peak_mib": train_peak / 2**20 if train_peak is not None else None,
        # backbone training FLOPs on real tokens (6 x non-embedding params per token; attention
        # terms left out): useful work per second, so padding counts as waste
        "train_tflops": 6 * backbone_params * real_tokens / train_seconds / 1e12,
    }
    return result


def default_recipe(model: str):
    """``python train.py``'s network settings (backbone ``model``) and loss weights past the span
    warm-up, from the composed conf/train.yaml: the network and loss of a default training step
    (its optimizer, clipping and matmul precision are not reproduced here)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from causalmine.config import register_with_hydra
    from causalmine.settings import TrainConfig

    register_with_hydra()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train")
    settings = TrainConfig.from_config(cfg)
    if settings.loss.learned:  # its log variances live in the Lightning module, not here
        raise SystemExit("bench_speed: loss.weighting=uncertainty is not measured")
    # the backbone set here, not as an override: a path may hold characters Hydra's grammar
    # reads as syntax (=, ',', brackets)
    network = replace(settings.model, name_or_path=model)
    return network, settings.loss.at_epoch(settings.loss.seq_start_epoch)


def _pad_to(batch: dict, length: int, pad_id: int) -> dict:
    import torch

    out = dict(batch)
    for key, fill in (
        ("input_ids", pad_id),
        ("attention_mask", 0),
        ("token_type_ids", 0),
        ("cause_effect_labels", -100),
        ("signal_labels", -100),
    ):
        if key not in batch:
            continue
        tensor = batch[key]
        extra = length - tensor.shape[-1]
        if extra > 0:
            pad = torch.full((*tensor.shape[:-1], extra), fill, dtype=tensor.dtype)
            out[key] = torch.cat([tensor, pad], dim=-1)
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores"
    try:
        import torch

        if torch.cuda.is_available():
            text += f"; GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return text


def matmul_peak_tflops(device_name: str, size: int = 8192, repeats: int = 10) -> float:
    """The rate of a bare ``size``³ bf16 matrix product on a CUDA device: the achievable peak.

    Mean of ``repeats`` timed products after three warm-ups, timed with CUDA events.
    """
    import torch

    device = torch.device(device_name)
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000 / repeats
    return 2 * size**3 / seconds / 1e12


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="also measure with bf16 autocast (GPU)")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[16])
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument(
        "--data-root", default=os.environ.get("CAUSALMINE_DATA", str(ROOT / "data"))
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the device's peak dense bf16 TFLOP/s, for MFU (default on CUDA: measured)",
    )
    parser.add_argument("--out", default=str(HERE / "results" / "speed.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one system here
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_measure(args.one, args)))
        return
    if args.peak_tflops is None and args.bf16 and args.device.startswith("cuda"):
        args.peak_tflops = matmul_peak_tflops(args.device)
        print(f"measured bf16 matrix-product peak: {args.peak_tflops:.0f} TFLOP/s", flush=True)

    precisions = [False, True] if args.bf16 else [False]
    runs = []
    for bf16 in precisions:
        for repeat in range(args.repeats):
            for batch_size in args.batch_size:
                for system in args.systems:  # interleaved: a, b, c, a, b, c …
                    result = _run_one(system, batch_size, bf16, args)
                    result.update(repeat=repeat, precision="bf16" if bf16 else "fp32")
                    runs.append(result)
                    print(json.dumps(result), flush=True)
    summary = summarize(runs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "machine": machine(),
                "args": {k: v for k, v in vars(args).items() if k != "one"},
                "runs": runs,
                "summary": summary,
            },
            indent=2,
        )
    )
    print(markdown(summary, args))


def _run_one(system: str, batch_size: int, bf16: bool, args: argparse.Namespace) -> dict:
    """One (system, batch size, precision) measurement in a fresh subprocess."""
    command = [
        sys.executable,
        __file__,
        "--one",
        system,
        "--device",
        args.device,
        "--batch-size",
        str(batch_size),
        "--batches",
        str(args.batches),
        "--warmup",
        str(args.warmup),
        "--model",
        args.model,
        "--data-root",
        args.data_root,
    ]
    if bf16:
        command.append("--bf16")
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
            ),
        },
    )
    if done.returncode != 0:
        raise RuntimeError(f"{system} at batch {batch_size} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict]) -> list[dict]:
    """Medians per (precision, batch size, system), and each system's ratio to the first one."""
    rows = []
    groups = dict.fromkeys((r["precision"], r.get("batch_size", 16)) for r in runs)
    for precision, batch_size in groups:
        group = [
            r for r in runs if r["precision"] == precision and r.get("batch_size", 16) == batch_size
        ]
        first = None
        for system in dict.fromkeys(r["system"] for r in group):
            mine = [r for r in group if r["system"] == system]
            row = {"precision": precision, "batch_size": batch_size, "system": system}
            for key in (
                "train_samples_per_s",
                "predict_samples_per_s",
                "peak_rss_mib",
                "cuda_peak_mib",
                "train_tflops",
            ):
                values = [r[key] for r in mine if r[key] is not None]
                row[key] = statistics.median(values) if values else None
            row["padding_share"] = 1 - mine[0]["real_tokens"] / mine[0]["padded_tokens"]
            first = first or row
            row["train_speedup_of_dynamic"] = (
                first["train_samples_per_s"] / row["train_samples_per_s"]
            )
            row["predict_speedup_of_dynamic"] = (
                first["predict_samples_per_s"] / row["predict_samples_per_s"]
            )
            rows.append(row)
    return rows


def markdown(summary: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "| precision | batch | batching | padding share | train samples/s | first ÷ this (train) | predict samples/s | first ÷ this (predict) | peak memory MiB | backbone TFLOP/s (train) | MFU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in summary:
        memory = r["cuda_peak_mib"] if r["cuda_peak_mib"] is not None else r["peak_rss_mib"]
        peak = args.peak_tflops if r["precision"] == "bf16" else None
        mfu = f"{r['train_tflops'] / peak:.2%}" if peak else "–"
        lines.append(
            f"| {r['precision']} | {r['batch_size']} | {r['system']} | {r['padding_share']:.0%} | {r['train_samples_per_s']:.1f} | {r['train_speedup_of_dynamic']:.2f}× "
            f"| {r['predict_samples_per_s']:.1f} | {r['predict_speedup_of_dynamic']:.2f}× | {memory:.0f} | {r['train_tflops']:.2f} | {mfu} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
