"""How fast can this CPU run the model at all? The compute ceiling against the speed targets.

    python experiments/bench_ceiling.py --ckpt RUN/checkpoints/last.ckpt --threads 2 --repeats 5

Issues 13 and 14 ask for prediction at 3x the fp32 rate and for mining at 400 sentences/s. This
benchmark asks whether any implementation could reach these rates on the machine it runs on:

1. **Work per sentence.** The network's floating-point operations per CNC dev sentence, with
   the batching prediction uses (sorted by length, ``--batch-size`` per batch, dynamic padding).
   ``torch.utils.flop_counter`` counts the linear layers; the BiLSTM (over real tokens only:
   the sequences are packed) and attention (over padded tokens) are counted from their shapes,
   since the counter does not see ``aten.lstm`` or CPU attention kernels.
2. **What the CPU computes.** The rate of a bare matrix product of the model's own largest
   shape (tokens of a batch x 384 @ 384 x 1536, the feed-forward layer), in fp32 and as a
   dynamically quantized int8 ``Linear`` (activations quantized per call, as int8 prediction
   does). These rates bound any engine that runs this model's arithmetic.
3. **The ceiling.** rate / work per sentence without padding: the sentences/s of a forward
   pass that wasted nothing on padding and ran at the bare product's rate all the time (no
   tokenizer, decoding, reading or writing either). Likewise for training (issue 13's 5-epoch
   run): forward and backward cost 3x the forward's work per training sentence, so
   ``3 x work x --train-sentences x --train-epochs / rate`` seconds is a lower bound on the
   run's compute, before optimizer steps, validation and checkpoints.
4. **Engines, measured.** The forward pass (``--batch-size`` batches of the same sentences) in
   torch fp32, torch int8 (``precision=int8``), and ONNX Runtime fp32 and int8 (the network
   exported with ``torch.onnx.export``, quantized with ``onnxruntime.quantization``, dynamic,
   per channel), each checked against torch fp32's outputs.

Every measurement is interleaved with the others and repeated; medians go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class _Logits(nn.Module):
    """The network's four logit tensors as a tuple (what ONNX export and timing need)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple:
        out = self.network(input_ids, attention_mask)
        return out.seq_logits, out.pair_logits, out.cause_effect_logits, out.signal_logits


def sentence_batches(
    tokenizer, texts: list[str], batch_size: int, max_length: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Prediction's batching: sorted by length, padded to the longest of each batch."""
    encoded = sorted(
        (tokenizer(t, truncation=True, max_length=max_length)["input_ids"] for t in texts), key=len
    )
    batches = []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        width = max(map(len, chunk))
        lengths = torch.tensor([len(ids) for ids in chunk])
        ids = torch.tensor([ids + [tokenizer.pad_token_id] * (width - len(ids)) for ids in chunk])
        mask = (torch.arange(width)[None] < lengths[:, None]).long()
        batches.append((ids, mask))
    return batches


def work_per_sentence(network: nn.Module, batches: list) -> dict[str, float]:
    """GFLOP per sentence: linear layers counted by torch, BiLSTM and attention from shapes."""
    from torch.utils.flop_counter import FlopCounterMode

    sentences = sum(len(ids) for ids, _ in batches)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        for ids, mask in batches:
            network(ids, mask)
    counted = counter.get_total_flops()
    backbone = network.backbone.config
    padded = sum(ids.numel() for ids, _ in batches)
    squares = sum(ids.shape[0] * ids.shape[1] ** 2 for ids, _ in batches)
    real = sum(int(mask.sum()) for _, mask in batches)
    # QK^T and (attention x V): 2 products of T x T x hidden multiply-adds per layer
    attention = 4 * squares * backbone.hidden_size * backbone.num_hidden_layers
    lstm = 0
    if network.lstm is not None:
        layer_input, hidden = network.lstm.input_size, network.lstm.hidden_size
        directions = 2 if network.lstm.bidirectional else 1
        for _ in range(network.lstm.num_layers):
            lstm += real * directions * 2 * 4 * hidden * (layer_input + hidden)
            layer_input = directions * hidden
    to_g = 1e9 * sentences
    return {
        "linear": counted / to_g,
        "attention": attention / to_g,
        "lstm": lstm / to_g,
        "total": (counted + attention + lstm) / to_g,
        # the same sentences with no padding at all: the least work any batching could do
        "total_without_padding": (counted * real / padded + attention + lstm) / to_g,
        "tokens_per_sentence_padded": padded / sentences,
        "tokens_per_sentence_real": real / sentences,
    }


def _product_timers(tokens: int, d_in: int, d_out: int) -> dict[str, tuple[Callable, float]]:
    """Bare matrix products of the feed-forward layer's shape: (timer, GFLOP per call)."""
    from causalmine.precision import quantized_int8

    x = torch.randn(tokens, d_in)
    layer = nn.Linear(d_in, d_out).eval()
    quantized = quantized_int8(nn.Sequential(layer)).eval()
    gflop = 2 * tokens * d_in * d_out / 1e9

    def fp32() -> None:
        with torch.inference_mode():
            for _ in range(20):
                layer(x)

    def int8() -> None:
        with torch.inference_mode():
            for _ in range(20):
                quantized(x)

    return {"product fp32": (fp32, 20 * gflop), "product int8": (int8, 20 * gflop)}


def _onnx_sessions(model: nn.Module, example: tuple, threads: int, folder: Path) -> dict:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32_path, int8_path = folder / "network.onnx", folder / "network_int8.onnx"
    axes = {0: "batch", 1: "tokens"}
    torch.onnx.export(
        model,
        example,
        str(fp32_path),
        input_names=["input_ids", "attention_mask"],
        output_names=["seq", "pair", "cause_effect", "signal"],
        dynamic_axes={
            "input_ids": axes,
            "attention_mask": axes,
            "cause_effect": {0: "batch", 2: "tokens"},
            "signal": {0: "batch", 2: "tokens"},
        },
        opset_version=17,
        dynamo=False,  # the TorchScript exporter maps packed sequences onto ONNX's LSTM
    )
    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8, per_channel=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return {
        name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for name, path in (("onnxruntime fp32", fp32_path), ("onnxruntime int8", int8_path))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="a checkpoint or an export directory")
    parser.add_argument("--sentences", type=int, default=512, help="CNC dev sentences")
    parser.add_argument("--batch-size", type=int, default=64, help="mine.yaml's default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=float, default=400.0, help="sentences/s to compare")
    # 346 steps of 8 per epoch: CNC train less our validation documents (RESULTS §7's run)
    parser.add_argument("--train-sentences", type=int, default=2768)
    parser.add_argument("--train-epochs", type=int, default=5)
    parser.add_argument(
        "--data-root", default=os.environ.get("CAUSALMINE_DATA", str(ROOT / "data"))
    )
    parser.add_argument("--out", default=str(HERE / "results" / "ceiling.json"))
    args = parser.parse_args()

    from causalmine.data.corpora import load_cnc
    from causalmine.inference.bundle import load_bundle
    from causalmine.precision import quantized_int8

    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.ckpt)
    network = bundle.network.eval()
    texts = [e.text for e in load_cnc(args.data_root, download=False).test][: args.sentences]
    batches = sentence_batches(bundle.tokenizer, texts, args.batch_size, bundle.max_length)
    work = work_per_sentence(network, batches)
    print(json.dumps({"GFLOP per sentence": work}, indent=1), flush=True)

    models = {"torch fp32": _Logits(network).eval(), "torch int8": _Logits(quantized_int8(network))}

    def torch_forward(model: nn.Module) -> Callable:
        def run() -> list:
            with torch.inference_mode():
                return [[t.numpy() for t in model(ids, mask)] for ids, mask in batches]

        return run

    timers: dict[str, tuple[Callable, float]] = {
        name: (torch_forward(model), len(texts)) for name, model in models.items()
    }
    tokens = round(args.batch_size * work["tokens_per_sentence_padded"])
    backbone = network.backbone.config
    products = _product_timers(tokens, backbone.hidden_size, backbone.intermediate_size)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sessions = _onnx_sessions(models["torch fp32"], batches[-1], args.threads, Path(tmp))
        except ImportError as error:  # onnxruntime is in the `bench` extra
            print(f"ONNX Runtime rows skipped: {error}")
            sessions = {}
        for name, session in sessions.items():

            def run(session=session) -> list:
                return [
                    session.run(None, {"input_ids": i.numpy(), "attention_mask": m.numpy()})
                    for i, m in batches
                ]

            timers[name] = (run, len(texts))

        reference = timers["torch fp32"][0]()
        agreement = {}
        for name, (run, _) in timers.items():
            outputs = run()
            agreement[name] = {
                "max_abs_diff": max(
                    float(np.abs(o[k] - r[k]).max())
                    for o, r in zip(outputs, reference, strict=True)
                    for k in range(4)
                ),
                "span_label_agreement": float(
                    np.mean(
                        np.concatenate(
                            [
                                (o[2].argmax(-1) == r[2].argmax(-1)).ravel()
                                for o, r in zip(outputs, reference, strict=True)
                            ]
                        )
                    )
                ),
            }
        seconds: dict[str, list[float]] = {name: [] for name in [*timers, *products]}
        for _ in range(args.repeats):  # interleaved: load on the machine hits every row alike
            for name, (run, _) in [*timers.items(), *products.items()]:
                start = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - start)

    rows = {}
    work_unpadded = work["total_without_padding"]
    for name, (_, sentences) in timers.items():
        median = statistics.median(seconds[name])
        rows[name] = {
            "sentences_per_s": sentences / median,
            "gflop_per_s": sentences * work["total"] / median,
            **agreement[name],
        }
    for name, (_, gflop) in products.items():
        rate = gflop / statistics.median(seconds[name])
        rows[name] = {"gflop_per_s": rate, "ceiling_sentences_per_s": rate / work_unpadded}
    train_gflop = 3 * work_unpadded * args.train_sentences * args.train_epochs
    rows["product fp32"]["training_compute_lower_bound_s"] = (
        train_gflop / rows["product fp32"]["gflop_per_s"]
    )
    result = {
        "machine": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "sentences": len(texts),
        "repeats": args.repeats,
        "target_sentences_per_s": args.target,
        "gflop_per_sentence": work,
        "rows": rows,
        "seconds": seconds,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"| row | sentences/s | GFLOP/s | ceiling sentences/s (÷ {work_unpadded:.3f} GFLOP) |")
    print("| --- | ---: | ---: | ---: |")
    for name, row in rows.items():
        print(
            f"| {name} | {row.get('sentences_per_s', float('nan')):.1f} | {row['gflop_per_s']:.1f}"
            f" | {row.get('ceiling_sentences_per_s', float('nan')):.1f} |"
        )
    bound = rows["product fp32"]["training_compute_lower_bound_s"]
    print(f"training compute, {args.train_epochs} epochs, at the fp32 product rate: {bound:.0f} s")
    print(f"\n{args.out}")


if __name__ == "__main__":
    main()
