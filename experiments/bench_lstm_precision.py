"""The BiLSTM reader under bf16 autocast: in bf16 (autocast's choice) or in fp32 (the network's).

    python experiments/bench_lstm_precision.py --device cuda --model MODEL_DIR --out F.json

Under bf16 autocast a packed ``nn.LSTM`` on CUDA runs in bf16, where the whole network trained
about 5x slower than in fp32 on an H200; ``CausalNetwork`` therefore reads in fp32 inside
autocast. This measures the three variants with ``bench_speed``'s training and prediction
loops (same sentences, batches and warm-up), in one process, interleaved per batch size:
fp32 throughout, bf16 autocast with the reader in bf16 (the reader as it was before the change,
restored here for the comparison), and bf16 autocast with the reader in fp32 (the network today).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import bench_speed
import torch
from torch import nn

from causalmine.model.network import CausalNetwork

HERE = Path(__file__).resolve().parent


def read_in_autocast_precision(
    self: CausalNetwork, states: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """The reader as it was: the packed LSTM in whatever precision autocast gives it."""
    lengths = attention_mask.sum(1).clamp(min=1).cpu()
    packed = nn.utils.rnn.pack_padded_sequence(
        states, lengths, batch_first=True, enforce_sorted=False
    )
    out, _ = self.lstm(packed)
    read, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=states.shape[1])
    return read


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--data-root", default=str(HERE.parent / "data"))
    parser.add_argument("--out", default=str(HERE / "results" / "lstm_precision.json"))
    args = parser.parse_args()

    fp32_reader = CausalNetwork._read
    variants = (
        ("fp32", False, fp32_reader),
        ("bf16, reader in bf16", True, read_in_autocast_precision),
        ("bf16, reader in fp32", True, fp32_reader),
    )
    rows = []
    for repeat in range(args.repeats):
        for batch_size in args.batch_size:
            for name, bf16, reader in variants:
                CausalNetwork._read = reader
                settings = argparse.Namespace(**vars(args), bf16=bf16)
                settings.batch_size = [batch_size]
                result = bench_speed._measure("dynamic", settings)
                result.update(variant=name, repeat=repeat)
                rows.append(result)
                print(json.dumps(result), flush=True)
    CausalNetwork._read = fp32_reader
    Path(args.out).write_text(
        json.dumps({"machine": bench_speed.machine(), "runs": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
