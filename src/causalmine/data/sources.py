"""Where corpus files live, and fetching the public copies when they are missing.

The data root is ``data.root`` in the config, which defaults to ``$CAUSALMINE_DATA`` and then
``<repo>/data``. Under it each corpus keeps its authors' layout (``cnc_v2/train_subtask1.csv``,
``unicausal/splits/because_train.csv``…). Missing files are downloaded from the authors'
public GitHub repositories and checked against a SHA-256; offline, the error says where to
put them.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from causalmine.data.accounting import DataError

log = logging.getLogger(__name__)

CNC_URL = "https://raw.githubusercontent.com/tanfiona/CausalNewsCorpus/master/data/V2/{name}"
UNICAUSAL_URL = "https://raw.githubusercontent.com/tanfiona/UniCausal/main/data/{name}"


@dataclass(frozen=True)
class CorpusFile:
    relative_path: str  # under the data root
    url: str
    sha256: str | None  # None: accept whatever the authors publish now


def _cnc(name: str, sha256: str) -> CorpusFile:
    return CorpusFile(f"cnc_v2/{name}", CNC_URL.format(name=name), sha256)


def _unicausal(name: str, sha256: str) -> CorpusFile:
    return CorpusFile(f"unicausal/{name}", UNICAUSAL_URL.format(name=name), sha256)


KNOWN_FILES: dict[str, CorpusFile] = {
    f.relative_path: f
    for f in [
        _cnc(
            "train_subtask1.csv", "6e865e3eb2d25b20ce682f905b325142957ed8e0aa9f20edabaf35359a8f5097"
        ),
        _cnc(
            "dev_subtask1.csv", "ada6a1422c4fff3bc12927a45f63b3c41d8ae56051613f75309a0e52bf1dc9a5"
        ),
        _cnc(
            "train_subtask2.csv", "99ad7926ee3f2a30908a3f648a855275889a1bfdea44c94961a3217bb594180e"
        ),
        _cnc(
            "dev_subtask2.csv", "30def0cae4dff35497969519eb624f6e29afb51bebb88e4c181c04a23e7e6ace"
        ),
        _cnc(
            "train_subtask2_grouped.csv",
            "53e51b461da8e2964a4a00a2b110bfb4a3d216298fe756585e4833bfac09b702",
        ),
        _cnc(
            "dev_subtask2_grouped.csv",
            "82da71f12e60f5b0d2cc236b57ca44ce68f75c3047a55f9901d1dd194bf7c367",
        ),
        _cnc(
            "test_subtask1_text.csv",
            "d3ab231c054a9779a75c58696b5231df83649fbda9af3746e44016a8c32496e3",
        ),
        _cnc(
            "test_subtask2_text.csv",
            "50b7fd1a23bd78085634b3dd661f3cca4b04ed9023a356218d733039451f7899",
        ),
        _unicausal(
            "splits/because_train.csv",
            "8f491eeee0862d5a9eef92b770348e1a7d95684cf8d00b8a3746fd338ac1bc68",
        ),
        _unicausal(
            "splits/because_test.csv",
            "ae06c1f67dc3ed09e6c02881a8da3e9d33fbddda41b00f667f98a3e676999d55",
        ),
        _unicausal(
            "grouped/splits/because_train.csv",
            "43c09e0732c4824c0a35b40c9be510fd0c16f5d67d51c10b8b99d8e2dd8ad974",
        ),
        _unicausal(
            "grouped/splits/because_test.csv",
            "20bfd2c82503d6eaeb1aa640f3b6ff961d5f13cabdcd271427fab0b5e2a45bb3",
        ),
    ]
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def known_file(relative_path: str, family: str | None) -> CorpusFile | None:
    """The download source of a corpus file. ``family="unicausal"``: paths are relative to the
    UniCausal folder, and any corpus of its layout can be fetched (checksummed where known)."""
    if family == "unicausal":
        return KNOWN_FILES.get(f"unicausal/{relative_path}") or CorpusFile(
            relative_path, UNICAUSAL_URL.format(name=relative_path), None
        )
    return KNOWN_FILES.get(relative_path)


def ensure_file(
    root: str | Path,
    relative_path: str,
    download: bool = True,
    timeout: float = 20.0,
    family: str | None = None,
) -> Path:
    """Return ``root/relative_path``, downloading a known corpus file if it is missing."""
    path = Path(root).expanduser() / relative_path
    if path.is_file():
        return path
    known = known_file(relative_path, family)
    where = (
        f"Put the corpus files under {Path(root).expanduser().resolve()} "
        "(set data.root=DIR or the CAUSALMINE_DATA environment variable to use another folder)"
    )
    if known is None or not download:
        raise DataError(f"{path}: file not found. {where}.")
    log.info("downloading %s from %s", relative_path, known.url)
    try:
        with urllib.request.urlopen(known.url, timeout=timeout) as response:
            payload = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise DataError(
            f"{path}: file not found and the download from {known.url} failed ({err}). "
            f"Offline? {where}; the file is {relative_path} under that folder."
        ) from None
    digest = hashlib.sha256(payload).hexdigest()
    if known.sha256 is None:
        log.warning(
            "%s has no recorded checksum; saved unverified (sha256 %s)", relative_path, digest
        )
    elif digest != known.sha256:
        raise DataError(
            f"{known.url}: checksum mismatch (got {digest}, expected {known.sha256}); the file was not saved"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_bytes(payload)
    tmp.replace(path)
    return path
