"""The demo page in a real headless browser: type a sentence, see its spans highlighted."""

from __future__ import annotations

import shutil
import socket

import pytest

from causalmine.inference.predictor import SentencePrediction
from causalmine.schema import Relation, Span

gradio = pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class _KnownAnswer:
    """A predictor whose answer is known: "<effect> <effect> <signal> <cause> <cause>"."""

    def predict(self, texts):
        for text in texts:
            words = text.split(" ")
            relation = Relation.from_spans(
                [Span(0, 2, "E"), Span(2, 3, "S"), Span(3, len(words), "C")]
            )
            yield SentencePrediction(text, words, 0.875, 1, [relation])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_render_marks_each_kind_and_escapes_html():
    from causalmine.demo import render

    [prediction] = _KnownAnswer().predict(["Prices rose because <b>supply</b> fell."])
    page = render([prediction])
    assert '<mark class="effect">Prices rose</mark>' in page
    assert '<mark class="signal">because</mark>' in page
    assert '<mark class="cause">&lt;b&gt;supply&lt;/b&gt; fell.</mark>' in page
    assert "causal, p = 0.875" in page


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)")
def test_typed_text_comes_back_highlighted_in_chromium(tmp_path):
    from causalmine.demo import build_app

    port = _free_port()
    app = build_app(_KnownAnswer())
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
            page.fill("#text textarea", "Prices rose because supply fell.")
            page.click("#run")
            page.wait_for_selector("#result .sentence mark.cause", timeout=60_000)
            assert page.inner_text("#result .sentence mark.effect") == "Prices rose"
            assert page.inner_text("#result .sentence mark.signal") == "because"
            assert page.inner_text("#result .sentence mark.cause") == "supply fell."
            assert "p = 0.875" in page.inner_text("#result")
            page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
            browser.close()
    finally:
        app.close()
    assert (tmp_path / "demo.png").stat().st_size > 10_000
