"""Word boundaries: derived from token ids, stored with the blocks, used by whole-word masking."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from femlm.data import tokenizer as femtok
from femlm.data.blocks import build_blocks
from femlm.data.words import WordStarts
from femlm.masking.collator import MaskingCollator
from femlm.train.order import step_rows

WORDS = ["masking", "unbelievably", "tokens", "word", "pieces", "model", "the", "a", "of"]


def make_documents(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(3, 12))).capitalize() + "." for _ in range(n)]


@pytest.fixture(scope="module")
def docs():
    return make_documents(300)


@pytest.fixture(scope="module")
def wordpiece(docs):
    # A small vocabulary, so most words are cut into several ## pieces.
    return femtok.as_transformers(femtok.train_wordpiece(docs, vocab_size=60, min_frequency=1))


@pytest.fixture(scope="module")
def byte_bpe(docs):
    """A tiny RoBERTa-style byte-level BPE: Ġ marks a word's first token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    tok.train_from_iterator(docs, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>",
        cls_token="<s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
    )  # fmt: skip


def _words_of(tokenizer, ids: list[int], word_ids: list[int]) -> list[str]:
    """The text of each word, decoded from its tokens."""
    groups: dict[int, list[int]] = {}
    for i, w in zip(ids, word_ids, strict=True):
        if w >= 0:
            groups.setdefault(w, []).append(i)
    return [tokenizer.decode(g).strip() for g in groups.values()]


def test_wordpiece_words_are_the_tokenizers_own_words(wordpiece, docs):
    starts = WordStarts.of(wordpiece)
    assert starts.scheme == "continuation prefix '##'"
    for text in docs[:50]:
        enc = wordpiece(text)
        ours = starts.word_ids(enc["input_ids"]).tolist()
        theirs = [-1 if w is None else w for w in enc.word_ids()]
        assert ours == theirs  # BERT's pre-tokenizer words are exactly the ## runs
    assert any(t.startswith("##") for t in wordpiece.convert_ids_to_tokens(enc["input_ids"]))


def test_byte_level_bpe_words_start_at_g_and_keep_their_punctuation(byte_bpe):
    starts = WordStarts.of(byte_bpe)
    assert starts.scheme == "word-start marker 'Ġ'"
    text = "Unbelievably, the model masking word pieces of tokens."
    ids = byte_bpe(text)["input_ids"]
    assert len(ids) > len(text.split()) + 2, "the tiny vocabulary cuts words into pieces"
    words = _words_of(byte_bpe, ids, starts.word_ids(ids).tolist())
    assert words == text.split()
    assert starts.word_ids(ids)[[0, -1]].tolist() == [-1, -1], "specials are in no word"


def test_special_tokens_and_block_starts_end_words(byte_bpe, wordpiece):
    bpe = WordStarts.of(byte_bpe)
    doc = byte_bpe("unbelievably masking", add_special_tokens=False)["input_ids"]
    # <s> doc-tail </s> doc </s>: the second document's first token has no Ġ.
    row = [0, *doc[1:], 2, *doc, 2]
    w = bpe.word_ids(np.array([row]))[0]
    assert w[len(doc)] == -1 and w[len(doc) + 1] != w[len(doc) - 1]
    assert w[1] >= 0 and w[1] != w[0], "the tail of a word cut by the block starts a word"
    wp = WordStarts.of(wordpiece)
    piece = [i for t, i in wordpiece.vocab.items() if t.startswith("##")][0]
    sep, cls = wordpiece.sep_token_id, wordpiece.cls_token_id
    w = wp.word_ids(np.array([[cls, piece, piece, sep, piece, sep]]))[0].tolist()
    assert w[0] == w[3] == w[5] == -1 and w[1] == w[2] and w[4] not in (w[1], -1)


def test_a_tokenizer_without_word_markers_gives_one_word_per_token(caplog):
    from tokenizers import Tokenizer, models

    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    starts = WordStarts.of(tok)
    assert starts.scheme == "tokens" and "no word boundaries" in caplog.text
    assert starts.word_ids(np.array([[0, 1, 1, 0]])).tolist() == [[0, 1, 2, 3]]


@pytest.mark.parametrize("name", ["wordpiece", "byte_bpe"])
def test_blocks_store_the_word_ids(name, request, docs, tmp_path):
    tok = request.getfixturevalue(name)
    path = tmp_path / "c.txt"
    path.write_text("".join(d + "\n" for d in docs), encoding="utf-8")
    blocks = build_blocks(
        [path], tok, 32, tmp_path / "cache", validation_fraction=0.1, progress=False
    )
    starts = WordStarts.of(tok)
    for split in ("train", "validation"):
        ids = np.array(blocks[split]["input_ids"])
        assert blocks[split].features["word_ids"].feature.dtype == "int32"
        assert np.array_equal(np.array(blocks[split]["word_ids"]), starts.word_ids(ids))


def _pretraining_batch(tok, docs, tmp_path, strategy):
    """One collated batch of `femlm pretrain`'s first step, and its blocks."""
    from femlm.config import TrainConfig
    from femlm.train import loop
    from femlm.train.dist import Dist

    path = tmp_path / "c.txt"
    path.write_text("".join(d + "\n" for d in docs), encoding="utf-8")
    cfg = TrainConfig(
        data=[str(path)], strategy=strategy, rate=0.3, views=None if strategy == "fully-explored-span" else 2,
        batch_size=8, max_length=32, cache_dir=str(tmp_path / "cache"), progress=False,
    )  # fmt: skip
    d = Dist(0, 1, torch.device("cpu"))
    train, _ = loop._blocks(cfg, d, tok)
    collator = MaskingCollator(tok, strategy, cfg.views, cfg.rate, seed=0, return_view_info=False)
    batch = next(loop._micro_batches(cfg, train, collator, 0, d))
    indices = [i for _, i in step_rows(len(train), cfg.batch_size, cfg.seed, 0)]
    return batch, train, indices


@pytest.mark.parametrize("name", ["wordpiece", "byte_bpe"])
def test_whole_word_masks_cover_entire_words_in_a_pretraining_batch(name, request, docs, tmp_path):
    tok = request.getfixturevalue(name)
    batch, train, indices = _pretraining_batch(tok, docs, tmp_path, "whole-word")
    assert "word_ids" in train.column_names, "the loop reads the stored word ids"
    views = 2
    masked = (batch["labels"] != -100).view(len(indices), views, -1)
    long_words = 0
    for row, index in enumerate(indices):
        word_ids = torch.tensor(train[index]["word_ids"])
        for v in range(views):
            m = masked[row, v]
            for w in word_ids[m].unique().tolist():
                assert m[word_ids == w].all(), f"view {v} of block {index} masks part of word {w}"
                long_words += int((word_ids == w).sum() > 1)
    assert long_words > 5, "words of several tokens were masked"


def test_word_aligned_spans_in_a_pretraining_batch(wordpiece, docs, tmp_path):
    batch, train, indices = _pretraining_batch(wordpiece, docs, tmp_path, "fully-explored-span")
    views = batch["labels"].shape[0] // len(indices)
    masked = (batch["labels"] != -100).view(len(indices), views, -1)
    for row, index in enumerate(indices):
        word_ids = torch.tensor(train[index]["word_ids"])
        for v in range(views):
            # A view may split a word only where it is the one cut of a span.
            split = [
                w
                for w in word_ids[masked[row, v]].unique()
                if not masked[row, v][word_ids == w].all()
            ]
            assert len(split) <= 2


def test_the_collator_derives_word_ids_when_features_have_none(wordpiece, docs):
    rows = [wordpiece(d)["input_ids"] for d in docs[:16]]
    collator = MaskingCollator(wordpiece, "whole-word", 1, 0.3, seed=3, return_view_info=False)
    batch = collator([{"input_ids": r} for r in rows])
    starts = WordStarts.of(wordpiece)
    for r, labels in zip(rows, batch["labels"], strict=False):
        word_ids = torch.from_numpy(starts.word_ids(r)).long()
        m = labels[: len(r)] != -100
        for w in word_ids[m].unique().tolist():
            assert m[word_ids == w].all()


def test_the_collator_prefers_the_features_word_ids(wordpiece, docs):
    ids = wordpiece(docs[0])["input_ids"]
    one_word = [-1] + [0] * (len(ids) - 2) + [-1]
    collator = MaskingCollator(wordpiece, "whole-word", 1, 0.15, seed=0, return_view_info=False)
    batch = collator([{"input_ids": ids, "word_ids": one_word}])
    assert (batch["labels"][0, 1:-1] != -100).all(), "the one word is masked whole"


def test_random_masking_does_not_read_word_ids(wordpiece, docs, tmp_path):
    _, train, _ = _pretraining_batch(wordpiece, docs, tmp_path, "random")
    assert train.column_names == ["input_ids"]


def test_the_variance_probe_masks_words(wordpiece, docs, monkeypatch):
    from femlm.variance import analyser
    from femlm.variance.config import VarianceConfig

    seen = []
    draw = analyser.draw_views

    def spy(ids, maskable, arm, cfg, vocab, key, word_ids=None):
        seen.append((arm.strategy, word_ids))
        return draw(ids, maskable, arm, cfg, vocab, key, word_ids)

    monkeypatch.setattr(analyser, "draw_views", spy)
    seqs = [torch.tensor(wordpiece(d)["input_ids"][:24]) for d in docs[:3]]
    from transformers import BertConfig, BertForMaskedLM

    model = BertForMaskedLM(BertConfig(
        vocab_size=len(wordpiece), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32,
    ))  # fmt: skip
    cfg = VarianceConfig(strategies=["whole-word"], draws=2, views=2, progress=False)
    analyser.measure(model, seqs, wordpiece, cfg, hamming=False)
    starts = WordStarts.of(wordpiece)
    words = [w for s, w in seen if s == "whole-word"]
    assert words and all(w is not None for w in words)
    assert torch.equal(words[0], torch.from_numpy(starts.word_ids(seqs[0].numpy())).long())
    assert all(w is None for s, w in seen if s == "random")
