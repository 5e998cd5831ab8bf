"""Corpus files: found in place, downloaded with a checksum, or a clear offline message."""

from __future__ import annotations

import hashlib
import io
import urllib.error

import pytest

from causalmine.data import sources
from causalmine.data.accounting import DataError


def test_existing_file_is_used(tmp_path):
    (tmp_path / "cnc_v2").mkdir()
    (tmp_path / "cnc_v2" / "train_subtask1.csv").write_text("index,text,label\n")
    assert sources.ensure_file(tmp_path, "cnc_v2/train_subtask1.csv").is_file()


def test_offline_download_says_where_to_put_the_files(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(sources.urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as err:
        sources.ensure_file(tmp_path, "cnc_v2/dev_subtask1.csv")
    message = str(err.value)
    assert (
        "Offline?" in message
        and str(tmp_path.resolve()) in message
        and "CAUSALMINE_DATA" in message
    )


def _serve(payload: bytes):
    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    return lambda url, timeout: Response(payload)


def test_download_is_checked_against_its_checksum(tmp_path, monkeypatch):
    monkeypatch.setattr(sources.urllib.request, "urlopen", _serve(b"tampered"))
    with pytest.raises(DataError, match="checksum mismatch"):
        sources.ensure_file(tmp_path, "cnc_v2/dev_subtask1.csv")
    assert not (tmp_path / "cnc_v2" / "dev_subtask1.csv").exists()


def test_good_download_is_saved(tmp_path, monkeypatch):
    payload = b"index,text,label\n"
    known = sources.CorpusFile(
        "cnc_v2/x.csv", "https://example.invalid/x.csv", hashlib.sha256(payload).hexdigest()
    )
    monkeypatch.setitem(sources.KNOWN_FILES, known.relative_path, known)
    monkeypatch.setattr(sources.urllib.request, "urlopen", _serve(payload))
    assert sources.ensure_file(tmp_path, "cnc_v2/x.csv").read_bytes() == payload


def test_known_files_match_the_corpora_at_hand(data_root):
    for relative, known in sources.KNOWN_FILES.items():
        assert sources.sha256_of(data_root / relative) == known.sha256, relative
