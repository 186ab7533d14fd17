"""Fixtures shared by the test modules."""

import pytest
from test_train import _corpus


@pytest.fixture(scope="session")
def setup(tmp_path_factory):
    """A tiny corpus, its tokenizer and a block cache, for pre-training runs."""
    from femlm.data.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("train")
    corpus = _corpus(root / "corpus.txt")
    tok = train_tokenizer([corpus], root / "tok", vocab_size=120, min_frequency=1, progress=False)
    return {"root": root, "corpus": corpus, "tokenizer": tok, "cache": root / "cache"}
