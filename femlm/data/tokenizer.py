"""WordPiece tokenizers: train on a corpus, save, load.

The saved folder is an ordinary ``transformers`` tokenizer folder
(``tokenizer.json`` + ``tokenizer_config.json``), so ``AutoTokenizer`` and any
HF tool load it without femlm.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

from femlm.data.readers import iter_documents, progress_bar
from femlm.errors import FemlmError
from femlm.files import check_config_json

log = logging.getLogger("femlm")

DEFAULT_VOCAB_SIZE = 8192
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Any one of these makes a folder a tokenizer folder (fast, WordPiece, BPE, SentencePiece).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)

# Written as the tokenizer class so both transformers 4 (where it is the fast
# base class) and 5 (where it aliases the tokenizers backend) load the folder
# as-is; a Bert* class would rebuild the normalizer from ``do_lower_case``.
_PORTABLE_CLASS = "PreTrainedTokenizerFast"


def train_wordpiece(
    documents: Iterable[str],
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    min_frequency: int = 2,
    lowercase: bool = True,
) -> Any:
    """A ``tokenizers.Tokenizer`` (BERT-style WordPiece) trained on ``documents``.

    The iterator is consumed once, inside the Rust trainer, so the corpus is
    never held in memory. Raises FemlmError when it yields nothing.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    if vocab_size <= len(SPECIAL_TOKENS):
        raise FemlmError(
            f"vocab_size must exceed {len(SPECIAL_TOKENS)} (the special tokens), got {vocab_size}"
        )
    if min_frequency < 1:
        raise FemlmError(f"min_frequency must be at least 1, got {min_frequency}")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
    )
    seen = _Counted(documents)
    tok.train_from_iterator(seen, trainer=trainer)
    if seen.count == 0:
        raise FemlmError("the corpus holds no documents: nothing to train a tokenizer on")
    # The trainer breaks ties between equally frequent merges in hash-map order,
    # which changes from process to process, so the same corpus gave different
    # ids. WordPiece encodes by longest match against the vocabulary *set*; ids
    # in sorted order (special tokens first) make them a function of the set.
    learned = sorted(t for t in tok.get_vocab() if t not in SPECIAL_TOKENS)
    tok = wordpiece_from_vocab(learned, lowercase)
    log.info(
        "trained a WordPiece vocabulary of %d on %d documents", tok.get_vocab_size(), seen.count
    )
    return tok


def wordpiece_from_vocab(words: list[str], lowercase: bool = True) -> Any:
    """A BERT-style WordPiece ``tokenizers.Tokenizer`` whose ids are femlm's special
    tokens, then ``words`` in the order given (``##`` marks a word's continuation)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + list(words))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(SPECIAL_TOKENS)  # matched whole, before normalisation
    tok.post_processor = bert_template(tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]"))
    return tok


class _Counted:
    """Iterate ``items`` and count them, so an empty corpus can be reported."""

    def __init__(self, items: Iterable[str]) -> None:
        self.items, self.count = items, 0

    def __iter__(self):
        for item in self.items:
            self.count += 1
            yield item


def bert_template(cls_id: int, sep_id: int) -> Any:
    """``[CLS] A [SEP]`` (and ``[CLS] A [SEP] B [SEP]`` with type ids 1 for B)."""
    from tokenizers import processors

    return processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )


def as_transformers(tok: Any) -> Any:
    """Wrap a ``tokenizers.Tokenizer`` with femlm's special tokens for ``transformers``."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def save_tokenizer(tok: Any, out_dir: str | os.PathLike) -> pathlib.Path:
    """Save a ``tokenizers.Tokenizer`` as a ``transformers`` folder; return the folder.

    Files are written to a temporary folder first and then moved in one by one
    with ``os.replace``, so a crash never leaves a half-written file, and other
    files already in ``out_dir`` (a model, say) are kept.
    """
    out = pathlib.Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise FemlmError(f"cannot save the tokenizer: {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    fast = as_transformers(tok)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=".tokenizer-", dir=out))
    try:
        fast.save_pretrained(tmp)
        make_portable(tmp / "tokenizer_config.json")
        for path in sorted(tmp.iterdir()):
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("saved the tokenizer to %s", out)
    return out


def save_portable(
    tokenizer: Any,
    folder: str | os.PathLike,
    model_max_length: int | None = None,
    token_types: bool = True,
) -> None:
    """``tokenizer.save_pretrained(folder)``, then :func:`make_portable` on its config."""
    tokenizer.save_pretrained(str(folder))
    make_portable(pathlib.Path(folder) / "tokenizer_config.json", model_max_length, token_types)


def make_portable(
    config_path: pathlib.Path, model_max_length: int | None = None, token_types: bool = True
) -> None:
    """Rewrite a saved ``tokenizer_config.json`` so that transformers 4 and 5 both load it
    and HF tools see the model's limits.

    ``model_max_length``: the model's usable positions; without it pipelines feed
    any text whole and crash past the position table. ``token_types``: keep
    ``token_type_ids`` among the model inputs (BERT-style models with
    ``type_vocab_size >= 2``); transformers 5's generic class drops them.
    """
    config = json.loads(config_path.read_text(encoding="utf-8"))
    # transformers 5 names its generic class TokenizersBackend, which 4.x does not
    # know; a tokenizer of a named family (RobertaTokenizer, ...) keeps its class.
    if config.get("tokenizer_class") in (None, "TokenizersBackend", _PORTABLE_CLASS):
        config["tokenizer_class"] = _PORTABLE_CLASS
    # Loading-time arguments that transformers 5 records; 4.x would pass them to __init__.
    for key in ("backend", "is_local", "local_files_only"):
        config.pop(key, None)
    if model_max_length is not None:
        config["model_max_length"] = int(model_max_length)
    names = ["input_ids", "attention_mask"]
    config["model_input_names"] = (
        names[:1] + ["token_type_ids"] + names[1:] if token_types else names
    )
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def load_tokenizer(path: str | os.PathLike) -> Any:
    """A ``transformers`` tokenizer from a local folder; never downloads.

    Raises FemlmError (one line) when the folder is missing or does not load,
    or when the tokenizer has no mask token, which masked-LM training needs.
    """
    from transformers import AutoTokenizer

    folder = pathlib.Path(path).expanduser()
    if not folder.is_dir():
        raise FemlmError(
            f"cannot load a tokenizer from {str(path)!r}: the folder does not exist; "
            "train one with `femlm tokenizer train`"
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        # transformers 5 builds an empty tokenizer from config.json alone, which then
        # finds no tokens in any corpus.
        raise FemlmError(
            f"{str(path)!r} holds no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...); "
            "give --tokenizer DIR, or save the model's tokenizer into that folder"
        )
    check_config_json(folder)  # a damaged config.json would be blamed on the tokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:  # transformers raises many types for a bad folder
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FemlmError(f"cannot load a tokenizer from {str(path)!r}: {first}") from None
    if tokenizer.mask_token_id is None:
        raise FemlmError(
            f"the tokenizer in {str(path)!r} has no mask token; masked-LM training needs one"
        )
    return tokenizer


# --- packing ---------------------------------------------------------------------


def train_tokenizer(
    paths: Sequence[str | os.PathLike] | str | os.PathLike,
    out_dir: str | os.PathLike,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    min_frequency: int = 2,
    lowercase: bool = True,
    text_field: str = "text",
    progress: bool = True,
) -> pathlib.Path:
    """Train a WordPiece tokenizer on the corpus and save it where AutoTokenizer loads it.

    Uncased by default (BERT's normaliser lowercases and strips accents), which
    suits the small corpora this project targets. Returns ``out_dir``.
    """
    stats: dict = {}
    documents = iter_documents(paths, text_field, "skip", stats)
    tok = train_wordpiece(
        progress_bar(documents, "reading corpus", progress), vocab_size, min_frequency, lowercase
    )
    if stats["bad_utf8"]:
        log.warning("skipped %d lines that are not UTF-8", stats["bad_utf8"])
    return save_tokenizer(tok, out_dir)
