"""Data pipeline: reading every input format, tokenizer training, packing, split, cache.

Every corpus is made up here, in tmp_path, from a fixed random generator.
"""

from __future__ import annotations

import inspect
import json
import logging
import random
import subprocess
import sys
import tracemalloc

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from femlm.data import blocks as data
from femlm.data import packing, readers
from femlm.data import tokenizer as femtok
from femlm.errors import FemlmError

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "pe", "du", "gri", "fal"]


def make_documents(n: int, seed: int = 0, words: tuple[int, int] = (3, 40)) -> list[str]:
    rng = random.Random(seed)
    vocab = ["".join(rng.choices(SYLLABLES, k=rng.randint(1, 3))) for _ in range(200)]
    return [
        " ".join(rng.choices(vocab, k=rng.randint(*words))).capitalize() + "." for _ in range(n)
    ]


def write_txt(path, docs):
    path.write_text("".join(d + "\n" for d in docs), encoding="utf-8")
    return path


def write_jsonl(path, docs, field="text"):
    with open(path, "w", encoding="utf-8") as fh:
        for i, d in enumerate(docs):
            fh.write(json.dumps({"id": i, field: d}) + "\n")
    return path


def write_parquet(path, docs, field="text"):
    pq.write_table(pa.table({"id": list(range(len(docs))), field: docs}), path, row_group_size=7)
    return path


@pytest.fixture(scope="module")
def docs():
    return make_documents(400)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory, docs):
    corpus = write_txt(tmp_path_factory.mktemp("corpus") / "c.txt", docs)
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    return femtok.train_tokenizer([corpus], out, vocab_size=300, min_frequency=1, progress=False)


@pytest.fixture(scope="module")
def tok(tok_dir):
    return femtok.load_tokenizer(tok_dir)


# --- reading -----------------------------------------------------------------------


def test_every_format_gives_the_same_documents(tmp_path, docs):
    sample = docs[:30]
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"text": sample}).save_to_disk(str(saved))
    saved_dict = tmp_path / "saved_dict"
    halves = {"a": sample[:10], "b": sample[10:]}  # splits are read in sorted order
    datasets.DatasetDict(
        {k: datasets.Dataset.from_dict({"text": v}) for k, v in halves.items()}
    ).save_to_disk(str(saved_dict))
    inputs = [
        write_txt(tmp_path / "c.txt", sample),
        write_jsonl(tmp_path / "c.jsonl", sample),
        write_jsonl(tmp_path / "c.json", sample),
        write_parquet(tmp_path / "c.parquet", sample),
        saved,
        saved_dict,
    ]
    for path in inputs:
        assert list(readers.iter_documents([path])) == sample, path


def test_folders_are_walked_in_sorted_order_skipping_other_files(tmp_path, docs):
    root = tmp_path / "corpus"
    (root / "b").mkdir(parents=True)
    write_txt(root / "b" / "2.txt", docs[2:4])
    write_jsonl(root / "a.jsonl", docs[0:2])
    write_parquet(root / "c.parquet", docs[4:6])
    (root / "notes.md").write_text("not a corpus file")
    (root / ".hidden.txt").write_text("hidden\n")
    assert list(readers.iter_documents([root])) == docs[:6]


def test_blank_lines_and_null_values_are_skipped(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"\xef\xbb\xbfone\r\n\n   \ntwo\n")
    assert list(readers.iter_documents(path)) == ["one", "two"]
    write_parquet(tmp_path / "n.parquet", ["a", None, "", "b"])
    assert list(readers.iter_documents([tmp_path / "n.parquet"])) == ["a", "b"]


def test_iter_documents_is_lazy_and_checks_paths_up_front(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "fine"}\nnot json\n')
    documents = readers.iter_documents([path])
    assert inspect.isgenerator(documents)
    assert next(documents) == "fine"  # the bad line is not read yet
    with pytest.raises(FemlmError, match=r"c\.jsonl:2: not valid JSON"):
        next(documents)
    with pytest.raises(FemlmError, match="does not exist"):
        readers.iter_documents([tmp_path / "missing.txt"])


def test_reading_a_large_file_uses_bounded_memory(tmp_path):
    line = ("lorem ipsum dolor sit amet " * 40).strip() + "\n"
    path = tmp_path / "big.txt"
    with open(path, "w") as fh:
        fh.writelines(line for _ in range(20_000_000 // len(line)))
    size = path.stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for _ in readers.iter_documents([path]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000_000 // len(line)
    assert peak < size / 50, (peak, size)


def test_non_utf8_lines_are_skipped_and_counted_or_raise(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"good one\nbad \xff\xfe line\ngood two\n\xc3\n")
    stats: dict = {}
    assert list(readers.iter_documents([path], stats=stats)) == ["good one", "good two"]
    assert stats == {"documents": 2, "bad_utf8": 2}
    with pytest.raises(FemlmError, match=r"c\.txt:2: not UTF-8"):
        list(readers.iter_documents([path], on_bad_utf8="error"))
    with pytest.raises(FemlmError, match="on_bad_utf8"):
        readers.iter_documents([path], on_bad_utf8="ignore")


def test_missing_text_field_is_one_clear_error(tmp_path, docs):
    write_jsonl(tmp_path / "c.jsonl", docs[:3], field="body")
    write_parquet(tmp_path / "c.parquet", docs[:3], field="body")
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"body": docs[:3]}).save_to_disk(str(saved))
    for path in (tmp_path / "c.jsonl", tmp_path / "c.parquet", saved):
        with pytest.raises(FemlmError, match="no (field|column) 'text'"):
            list(readers.iter_documents([path]))
        assert list(readers.iter_documents([path], text_field="body")) == docs[:3]
    (tmp_path / "n.jsonl").write_text('{"text": 3}\n')
    with pytest.raises(FemlmError, match="holds int, not text"):
        list(readers.iter_documents([tmp_path / "n.jsonl"]))


def test_bad_paths_are_one_clear_error(tmp_path):
    (tmp_path / "c.csv").write_text("a,b\n")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FemlmError, match="unsupported file type '.csv'"):
        readers.iter_documents([tmp_path / "c.csv"])
    with pytest.raises(FemlmError, match="holds no .txt"):
        readers.iter_documents([tmp_path / "empty"])
    with pytest.raises(FemlmError, match="no input files"):
        readers.iter_documents([])


# --- tokenizer ---------------------------------------------------------------------


def test_trained_tokenizer_loads_with_autotokenizer(tok_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    assert tokenizer.is_fast
    assert 50 < len(tokenizer) <= 300  # the made-up corpus has fewer pieces than 300
    assert [tokenizer.pad_token, tokenizer.unk_token, tokenizer.cls_token] == [
        "[PAD]",
        "[UNK]",
        "[CLS]",
    ]
    assert [tokenizer.sep_token, tokenizer.mask_token] == ["[SEP]", "[MASK]"]
    assert tokenizer.convert_tokens_to_ids(femtok.SPECIAL_TOKENS) == [0, 1, 2, 3, 4]
    ids = tokenizer("KALO Mine")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "kalo mine"  # uncased
    config = json.loads((tok_dir / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_training_the_same_corpus_twice_gives_the_same_tokenizer(tmp_path, docs):
    # The trainer's tie-breaking changes from process to process, so train in two.
    corpus = write_txt(tmp_path / "c.txt", docs)
    code = (
        "import sys; from femlm.data import tokenizer; "
        "tokenizer.train_tokenizer([sys.argv[1]], sys.argv[2], vocab_size=300, min_frequency=1, "
        "progress=False)"
    )
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(corpus), str(tmp_path / name)], check=True)
    first, second = ((tmp_path / n / "tokenizer.json").read_bytes() for n in ("a", "b"))
    assert first == second


def test_train_tokenizer_keeps_other_files_and_rejects_empty_corpus(tmp_path, docs):
    out = tmp_path / "model"
    out.mkdir()
    (out / "config.json").write_text("{}")
    corpus = write_txt(tmp_path / "c.txt", docs[:50])
    femtok.train_tokenizer(corpus, out, vocab_size=100, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    (tmp_path / "blank.txt").write_text("\n  \n")
    with pytest.raises(FemlmError, match="no documents"):
        femtok.train_tokenizer([tmp_path / "blank.txt"], tmp_path / "t2", progress=False)
    with pytest.raises(FemlmError, match="vocab_size"):
        femtok.train_tokenizer(corpus, tmp_path / "t3", vocab_size=5, progress=False)


def test_load_tokenizer_errors(tmp_path, tok):
    with pytest.raises(FemlmError, match="does not exist"):
        femtok.load_tokenizer(tmp_path / "nope")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "tokenizer.json").write_text("{broken")
    with pytest.raises(FemlmError, match="cannot load a tokenizer"):
        femtok.load_tokenizer(tmp_path / "junk")
    from transformers import PreTrainedTokenizerFast

    no_mask = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, pad_token="[PAD]")
    no_mask.save_pretrained(tmp_path / "no_mask")
    with pytest.raises(FemlmError, match="no mask token"):
        femtok.load_tokenizer(tmp_path / "no_mask")


# --- packing -----------------------------------------------------------------------


def stream(tok, documents, sep):
    """The expected token stream: documents (tokenised, no specials) joined by [SEP]."""
    out: list[int] = []
    for ids in tok(documents, add_special_tokens=False)["input_ids"]:
        if ids:
            out += ([sep] if out else []) + ids
    return out


def bodies(split, max_length):
    ids = np.array(split["input_ids"], dtype=np.int64).reshape(-1, max_length)
    return ids, ids[:, 1:-1].reshape(-1).tolist()


def test_blocks_are_exact_and_pack_short_documents(tmp_path, tok):
    short = make_documents(300, seed=1, words=(2, 5))
    corpus = write_txt(tmp_path / "c.txt", short)
    length = 32
    ds = data.build_blocks(
        [corpus], tok, length, tmp_path / "cache", validation_fraction=0, progress=False
    )
    assert len(ds["validation"]) == 0
    rows, body = bodies(ds["train"], length)
    assert (rows[:, 0] == tok.cls_token_id).all() and (rows[:, -1] == tok.sep_token_id).all()
    expected = stream(tok, short, tok.sep_token_id)
    assert len(rows) == len(expected) // (length - 2)  # only the partial last block is dropped
    assert body == expected[: len(body)]
    assert ds["train"]["example_index"] == list(range(len(rows)))
    assert ds["train"].features["input_ids"].feature.dtype == "int32"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(10, 99), max_size=40), max_size=30), st.integers(3, 12))
def test_packer_cuts_the_joined_stream(tmp_path_factory, documents, length):
    packer = packing.Packer(tmp_path_factory.mktemp("p") / "x.bin", length, 1, 2)
    for start in range(0, len(documents), 4):  # batches must not matter
        packer.add(documents[start : start + 4])
    packer.finish()
    expected: list[int] = []
    for ids in documents:
        if ids:
            expected += ([2] if expected else []) + ids
    rows = np.fromfile(packer.path, dtype=np.int32).reshape(-1, length)
    assert len(rows) == packer.blocks == len(expected) // (length - 2)
    assert rows[:, 1:-1].reshape(-1).tolist() + packer.carry.tolist() == expected


def test_split_is_by_document_deterministic_and_disjoint(tmp_path, tok, docs):
    corpus = write_txt(tmp_path / "c.txt", docs)
    length, sep = 24, tok.sep_token_id
    build = data.build_blocks
    a = build(
        [corpus], tok, length, tmp_path / "c1", validation_fraction=0.25, seed=3, progress=False
    )
    b = build(
        [corpus], tok, length, tmp_path / "c2", validation_fraction=0.25, seed=3, progress=False
    )
    assert a["train"]["input_ids"] == b["train"]["input_ids"]
    assert a["validation"]["input_ids"] == b["validation"]["input_ids"]
    is_val = [packing.in_validation(d, 3, 0.25) for d in docs]
    assert 0.1 < sum(is_val) / len(docs) < 0.4
    for name, docs_in in (
        ("train", [d for d, v in zip(docs, is_val, strict=True) if not v]),
        ("validation", [d for d, v in zip(docs, is_val, strict=True) if v]),
    ):
        _, body = bodies(a[name], length)
        assert body == stream(tok, docs_in, sep)[: len(body)], name
    c = build(
        [corpus], tok, length, tmp_path / "c3", validation_fraction=0.25, seed=4, progress=False
    )
    assert c["validation"]["input_ids"] != a["validation"]["input_ids"]


def test_validation_falls_back_to_one_block(tmp_path, tok, docs):
    corpus = write_txt(tmp_path / "c.txt", docs[:40])
    assert not any(packing.in_validation(d, 0, 0.001) for d in docs[:40])
    ds = data.build_blocks(
        [corpus], tok, 16, tmp_path / "cache", validation_fraction=0.001, progress=False
    )
    assert len(ds["validation"]) == 1 and len(ds["train"]) >= 1
    assert ds["validation"]["example_index"] == [0]


def test_too_little_text_is_one_clear_error(tmp_path, tok):
    corpus = write_txt(tmp_path / "c.txt", ["kalo mine", "ru"])
    with pytest.raises(
        FemlmError, match=r"found \d+ tokens in 2 documents.*need at least 252 tokens"
    ):
        data.build_blocks([corpus], tok, 128, tmp_path / "cache", progress=False)
    (tmp_path / "blank.txt").write_text("\n\n")
    with pytest.raises(FemlmError, match="no documents"):
        data.build_blocks([tmp_path / "blank.txt"], tok, 128, tmp_path / "cache", progress=False)
    with pytest.raises(FemlmError, match="max_length"):
        data.build_blocks([corpus], tok, 2, tmp_path / "cache", progress=False)
    assert not any((tmp_path / "cache").iterdir())  # failed builds leave nothing behind


def test_build_blocks_bad_input(tmp_path, tok, docs):
    corpus = tmp_path / "c.txt"
    corpus.write_bytes("\n".join(docs[:100]).encode() + b"\n\xff bad\n")
    with pytest.raises(FemlmError, match=r"c\.txt:101: not UTF-8"):
        data.build_blocks(
            [corpus], tok, 16, tmp_path / "cache", on_bad_utf8="error", progress=False
        )
    assert not any((tmp_path / "cache").iterdir())
    data.build_blocks([corpus], tok, 16, tmp_path / "cache", progress=False)
    meta = json.loads(next((tmp_path / "cache").glob("*/femlm_blocks.json")).read_text())
    assert meta["bad_utf8"] == 1 and meta["documents"] == 100
    from transformers import PreTrainedTokenizerFast

    no_cls = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, mask_token="[MASK]")
    with pytest.raises(FemlmError, match="no \\[CLS\\]"):
        data.build_blocks([corpus], no_cls, 16, tmp_path / "cache", progress=False)
    with pytest.raises(FemlmError, match="validation_fraction"):
        data.build_blocks([corpus], tok, 16, tmp_path / "cache", validation_fraction=1.0)


def test_tokenizer_truncation_is_ignored(tmp_path, tok_dir, docs):
    corpus = write_txt(tmp_path / "c.txt", [" ".join(docs[:60])])  # one long document
    plain = femtok.load_tokenizer(tok_dir)
    cut = femtok.load_tokenizer(tok_dir)
    cut.backend_tokenizer.enable_truncation(max_length=8)
    a = data.build_blocks(
        [corpus], plain, 16, tmp_path / "a", validation_fraction=0, progress=False
    )
    b = data.build_blocks([corpus], cut, 16, tmp_path / "b", validation_fraction=0, progress=False)
    assert len(a["train"]) > 10
    assert a["train"]["input_ids"] == b["train"]["input_ids"]


# --- cache -------------------------------------------------------------------------


def test_second_build_reuses_the_cache_and_edits_invalidate_it(
    tmp_path, tok, docs, monkeypatch, caplog
):
    corpus = write_txt(tmp_path / "c.txt", docs)
    cache = tmp_path / "cache"
    first = data.build_blocks([corpus], tok, 32, cache, progress=False)
    assert [p.name for p in cache.iterdir() if p.name.startswith(".")] == []  # temp folder gone

    def fail(*args, **kwargs):
        raise AssertionError("tokenised again instead of reusing the cache")

    monkeypatch.setattr(packing, "encode", fail)
    moved = write_txt(tmp_path / "moved.txt", docs)  # same content, other path
    with caplog.at_level(logging.INFO, logger="femlm"):
        again = data.build_blocks([moved], tok, 32, cache, progress=False)
    assert "reusing cached blocks" in caplog.text
    assert again["train"]["input_ids"] == first["train"]["input_ids"]
    meta = json.loads(next(cache.glob("*/femlm_blocks.json")).read_text())
    assert meta["train"]["blocks"] == len(first["train"]) and meta["documents"] == len(docs)

    write_txt(corpus, docs[:-1] + ["an edited last document."])
    with pytest.raises(AssertionError, match="tokenised again"):
        data.build_blocks([corpus], tok, 32, cache, progress=False)
    with pytest.raises(AssertionError, match="tokenised again"):
        data.build_blocks([moved], tok, 33, cache, progress=False)
    assert len(list(cache.iterdir())) == 1


def test_cache_key_covers_content_tokenizer_and_settings(tmp_path, docs):
    a = write_txt(tmp_path / "a.txt", docs[:5])
    b = write_txt(tmp_path / "b.txt", docs[:5])
    sources = readers.resolve_inputs([a])
    base = {"max_length": 8, "seed": 0}
    key = data.cache_key(sources, "tok", base)
    assert key == data.cache_key(readers.resolve_inputs([b]), "tok", base)
    assert key != data.cache_key(sources, "tok2", base)
    assert key != data.cache_key(sources, "tok", {**base, "seed": 1})
    write_txt(a, docs[:4])
    assert key != data.cache_key(readers.resolve_inputs([a]), "tok", base)
