"""A demo page: type text, see its causes, effects and signals highlighted, with the causal
probability of each sentence.

    python -m causalmine.demo model_dir=DIR_OR_CKPT_OR_HUB_ID [port=7860] [host=127.0.0.1]

Served with Gradio (``pip install -e ".[demo]"``). The text is split into sentences as
``mine.py`` splits documents, and each sentence is predicted as ``predict.py`` predicts it.
"""

from __future__ import annotations

import html
import sys
from typing import Any

from causalmine.inference.predictor import Predictor, SentencePrediction
from causalmine.inference.sentences import split_sentences

KIND_CLASS = {"C": "cause", "E": "effect", "S": "signal"}
STYLE = """
<style>
.causalmine mark { padding: 0 2px; border-radius: 3px; }
.causalmine mark.cause { background: #ffd6a5; }
.causalmine mark.effect { background: #a0c4ff; }
.causalmine mark.signal { background: #caffbf; font-weight: 600; }
.causalmine .sentence { margin: 0.6em 0; }
.causalmine .probability { font-family: monospace; color: #555; }
</style>
"""


def _marked(words: list[str], relation) -> str:
    """The sentence with each word of the relation wrapped by its kind (a signal inside a cause
    shows as a signal)."""
    kind_of = [None] * len(words)
    for kind in ("E", "C", "S"):  # later kinds win where spans overlap
        for span in relation.of_kind(kind):
            for w in range(span.start, span.end):
                kind_of[w] = kind
    parts, w = [], 0
    while w < len(words):
        kind, end = kind_of[w], w
        while end < len(words) and kind_of[end] == kind:
            end += 1
        chunk = html.escape(" ".join(words[w:end]))
        parts.append(f'<mark class="{KIND_CLASS[kind]}">{chunk}</mark>' if kind else chunk)
        w = end
    return " ".join(parts)


def render(predictions: list[SentencePrediction]) -> str:
    """HTML for the page: per sentence its probability and each relation highlighted."""
    blocks = []
    for p in predictions:
        label = "causal" if p.label == 1 else "not causal"
        head = f'<span class="probability">{label}, p = {p.causal_probability:.3f}</span>'
        lines = [_marked(p.words, r) for r in p.relations] or [html.escape(p.text)]
        body = "<br>".join(lines)
        blocks.append(f'<div class="sentence">{head}<br>{body}</div>')
    legend = (
        '<mark class="cause">cause</mark> <mark class="effect">effect</mark> '
        '<mark class="signal">signal</mark>'
    )
    return f'{STYLE}<div class="causalmine">{legend}{"".join(blocks)}</div>'


def analyse(predictor: Predictor, text: str) -> str:
    return render(list(predictor.predict(s.text for s in split_sentences(text))))


def build_app(predictor: Predictor) -> Any:
    """The Gradio page: a text box, a button, the highlighted result."""
    import gradio as gr

    with gr.Blocks(title="causalmine") as app:
        gr.Markdown(
            "# causalmine\nType or paste news text; causes, effects and signals are marked."
        )
        text = gr.Textbox(label="Text", lines=4, elem_id="text")
        button = gr.Button("Find causes", elem_id="run")
        result = gr.HTML(elem_id="result")
        button.click(lambda t: analyse(predictor, t), inputs=text, outputs=result)
        text.submit(lambda t: analyse(predictor, t), inputs=text, outputs=result)
    return app


def main(argv: list[str] | None = None) -> None:
    from causalmine.inference.bundle import load_bundle

    args = dict(a.split("=", 1) for a in (sys.argv[1:] if argv is None else argv) if "=" in a)
    if "model_dir" not in args:
        raise SystemExit(
            "usage: python -m causalmine.demo model_dir=DIR_OR_CKPT_OR_HUB_ID [port=7860] [host=127.0.0.1]"
        )
    predictor = load_bundle(args["model_dir"]).predictor()
    build_app(predictor).launch(
        server_name=args.get("host", "127.0.0.1"), server_port=int(args.get("port", 7860))
    )


if __name__ == "__main__":
    main()
