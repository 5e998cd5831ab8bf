"""Which sentence splitter should ``mine.py`` use? Accuracy on CNC news text, and speed.

    python experiments/bench_splitters.py                 # every splitter installed
    python experiments/bench_splitters.py --repeats 5 --out experiments/results/splitters.json

Gold: CNC V2's sequence-classification units (train + dev, 3,415 sentences) in document order
(``<subset>_<doc>_<sentence>`` indices), joined with one space into pseudo-documents of
``--units`` consecutive units. Every unit boundary is a gold sentence boundary. A few CNC units
hold more than one sentence (the annotators kept them as one example); every splitter pays the
same price for those, so they lower precision for all and do not change the ranking.

Measured per splitter: boundary precision, recall and F1 (a boundary is the character offset
where a sentence starts, the document start excluded), the share of units returned exactly as
one sentence, and sentences per second (median of ``--repeats`` interleaved passes over all
documents, one thread).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
Spans = list[tuple[int, int]]


def cnc_documents(data_dir: Path, units_per_document: int) -> list[tuple[str, Spans]]:
    """Pseudo-documents of consecutive CNC units and each unit's character span."""
    units: list[tuple[tuple, str]] = []
    for split in ("train", "dev"):
        with open(data_dir / f"{split}_subtask1.csv", encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f):
                # <split>_<subset>[_<part>]_<doc>_<sentence>, e.g. train_09_A_0_2638
                *subset, doc, sentence = row["index"].split("_")
                units.append(((*subset, int(doc), int(sentence)), row["text"].strip()))
    units.sort()
    documents = []
    for start in range(0, len(units), units_per_document):
        text, spans = "", []
        for _, unit in units[start : start + units_per_document]:
            if text:
                text += " "
            spans.append((len(text), len(text) + len(unit)))
            text += unit
        documents.append((text, spans))
    return documents


def _trimmed(text: str, spans: Spans) -> Spans:
    """Spans without surrounding white space (splitters differ in where they put it)."""
    out = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            out.append((start, end))
    return out


def splitters() -> dict[str, Callable[[str], Spans]]:
    """Every splitter that is installed, as ``text -> [(start, end)]`` character spans."""
    found: dict[str, Callable[[str], Spans]] = {}

    def regex(text: str) -> Spans:
        return [m.span() for m in re.finditer(r"\S.*?(?:[.!?][\"'”’)]*(?=\s|$)|$)", text)]

    found["regex [.!?] baseline"] = regex
    try:
        import blingfire

        found["blingfire"] = lambda text: [
            tuple(span) for span in blingfire.text_to_sentences_and_offsets(text)[1]
        ]
    except ImportError:
        pass
    try:
        import pysbd

        segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
        found["pysbd"] = lambda text: [(s.start, s.end) for s in segmenter.segment(text)]
    except ImportError:
        pass
    try:
        import syntok.segmenter

        def syntok_spans(text: str) -> Spans:
            spans = []
            for paragraph in syntok.segmenter.analyze(text):
                for sentence in paragraph:
                    start = sentence[0].offset
                    end = sentence[-1].offset + len(sentence[-1].value)
                    spans.append((start, end))
            return spans

        found["syntok"] = syntok_spans
    except ImportError:
        pass
    try:
        import spacy

        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        found["spacy sentencizer"] = lambda text: [
            (s.start_char, s.end_char) for s in nlp(text).sents
        ]
    except ImportError:
        pass
    try:
        from nltk.tokenize.punkt import PunktSentenceTokenizer, PunktTokenizer

        try:
            punkt = PunktTokenizer("english")
            name = "nltk punkt (english)"
        except LookupError:  # no NLTK data offline: Punkt with its default parameters
            punkt = PunktSentenceTokenizer()
            name = "nltk punkt (untrained)"
        found[name] = lambda text: list(punkt.span_tokenize(text))
    except ImportError:
        pass
    return found


def accuracy(documents: list[tuple[str, Spans]], split: Callable[[str], Spans]) -> dict:
    tp = predicted = gold = exact = units = 0
    for text, gold_spans in documents:
        spans = _trimmed(text, split(text))
        gold_starts = {s for s, _ in gold_spans[1:]}
        starts = {s for s, _ in spans if s > gold_spans[0][0]}
        tp += len(gold_starts & starts)
        predicted += len(starts)
        gold += len(gold_starts)
        exact += len(set(gold_spans) & set(spans))
        units += len(gold_spans)
    precision, recall = tp / max(predicted, 1), tp / max(gold, 1)
    return {
        "boundary_precision": precision,
        "boundary_recall": recall,
        "boundary_f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "exact_units": exact / units,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "cnc_v2"))
    parser.add_argument("--units", type=int, default=10, help="units per pseudo-document")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results" / "splitters.json"))
    args = parser.parse_args()

    documents = cnc_documents(Path(args.data), args.units)
    candidates = splitters()
    sentences = {
        name: sum(len(split(t)) for t, _ in documents) for name, split in candidates.items()
    }
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.repeats):  # interleaved: every splitter once per round
        for name, split in candidates.items():
            start = time.perf_counter()
            for text, _ in documents:
                split(text)
            seconds[name].append(time.perf_counter() - start)
    rows = []
    for name, split in candidates.items():
        median = statistics.median(seconds[name])
        rows.append(
            {
                "splitter": name,
                **accuracy(documents, split),
                "sentences_per_s": sentences[name] / median,
                "seconds": seconds[name],
            }
        )
    rows.sort(key=lambda r: -r["boundary_f1"])
    print(f"{len(documents)} documents, {sum(len(s) for _, s in documents)} gold units")
    print("| splitter | boundary P | boundary R | boundary F1 | exact units | sentences/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['splitter']} | {r['boundary_precision']:.4f} | {r['boundary_recall']:.4f} "
            f"| {r['boundary_f1']:.4f} | {r['exact_units']:.4f} | {r['sentences_per_s']:,.0f} |"
        )
    Path(args.out).write_text(json.dumps({"documents": len(documents), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
