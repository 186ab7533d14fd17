"""Word boundaries of token ids, read from the tokenizer's own word markers.

A word is what the vocabulary marks as one, so it can be found from the ids
alone, with no text and no offsets: WordPiece continues a word with ``##``
pieces (BERT's whole-word masking); byte-level BPE (RoBERTa, GPT-2) and
SentencePiece start a word with a token that begins with the space marker
``Ġ`` / ``▁`` (the rule fairseq uses for RoBERTa), so punctuation glued to a
word belongs to it. Special tokens are never part of a word and end the word
before them: a word never runs across the ``[SEP]`` between two documents, and
the tokens after a block's ``[CLS]`` start a word even when they are the tail
of a word cut by the block boundary.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from femlm.errors import FemlmError

log = logging.getLogger("femlm")

# Byte-level BPE writes space, newline, tab and carriage return as these.
_BYTE_LEVEL_SPACE = "ĠĊĉč"


@dataclass(frozen=True)
class WordStarts:
    """Lookup tables over the vocabulary, ``[vocab]`` bool each.

    ``starts``: the token begins a word; ``ends``: the token ends one (the next
    token begins a new one); ``special``: a special token, in no word.
    ``scheme`` says which rule the tables came from (``"tokens"``: the
    tokenizer marks no words, so each token is a word of its own).
    """

    starts: np.ndarray
    ends: np.ndarray
    special: np.ndarray
    scheme: str

    @classmethod
    def of(cls, tokenizer: Any) -> WordStarts:
        """The tables of a ``transformers`` fast tokenizer or a ``tokenizers.Tokenizer``."""
        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
        if not hasattr(backend, "to_str"):
            raise FemlmError(
                "word boundaries need a fast tokenizer (tokenizer.json); give the features "
                "word_ids or load the tokenizer with use_fast=True"
            )
        spec = json.loads(backend.to_str())
        vocab = backend.get_vocab(with_added_tokens=True)
        size = max(
            max(vocab.values(), default=-1) + 1, backend.get_vocab_size(with_added_tokens=True)
        )
        tokens = [""] * size
        for token, i in vocab.items():
            tokens[i] = token
        scheme, starts, ends = _scheme(spec, tokens)
        special = np.zeros(size, dtype=bool)
        for added in spec.get("added_tokens") or []:
            special[added["id"]] = bool(added.get("special"))
            starts[added["id"]] = ends[added["id"]] = True  # an added token is a word of its own
        for i in getattr(tokenizer, "all_special_ids", []):
            special[i] = True
        if scheme == "tokens":
            log.warning(
                "the tokenizer marks no word boundaries (no ## pieces, no Ġ or ▁ word starts); "
                "whole-word and span masking work on single tokens"
            )
        return cls(starts, ends, special, scheme)

    def word_ids(self, ids: Any) -> np.ndarray:
        """Word index of every token: int32 of the shape of ``ids`` (``[..., length]``).

        Words are numbered 0, 1, ... along each row; special tokens get -1.
        """
        ids = np.asarray(ids, dtype=np.int64)
        special = self.special[ids]
        start = self.starts[ids] | special
        start[..., 0] = True
        start[..., 1:] |= self.ends[ids[..., :-1]] | special[..., :-1]
        words = np.cumsum(start & ~special, axis=-1) - 1
        return np.where(special, -1, words).astype(np.int32)


def _scheme(spec: dict, tokens: list[str]) -> tuple[str, np.ndarray, np.ndarray]:
    """(name, starts, ends) from the tokenizer's model and pre-tokenizer settings."""
    model = spec.get("model") or {}
    starts = np.zeros(len(tokens), dtype=bool)
    ends = np.zeros(len(tokens), dtype=bool)
    prefix = model.get("continuing_subword_prefix")
    if model.get("type") == "WordPiece" or prefix:
        prefix = prefix or "##"
        starts[:] = [not t.startswith(prefix) for t in tokens]
        return f"continuation prefix {prefix!r}", starts, ends
    suffix = model.get("end_of_word_suffix")
    if suffix:
        ends[:] = [t.endswith(suffix) for t in tokens]
        return f"end-of-word suffix {suffix!r}", starts, ends
    types = dict(_types(spec.get("pre_tokenizer"))) | dict(_types(spec.get("decoder")))
    if "ByteLevel" in types:
        space = _BYTE_LEVEL_SPACE
    elif "Metaspace" in types:
        space = types["Metaspace"].get("replacement") or "▁"
    else:
        starts[:] = True
        return "tokens", starts, ends
    # Any leading space starts a word, a newline too. A token of spaces alone
    # (small vocabularies split "Ġ", "H", "ello") belongs to the word after it.
    starts[:] = [bool(t) and t[0] in space for t in tokens]
    return f"word-start marker {space[0]!r}", starts, ends


def _types(node: Any) -> Iterator[tuple[str, dict]]:
    """(type, settings) of a pre-tokenizer or decoder and of those nested in a Sequence."""
    if isinstance(node, dict):
        if "type" in node:
            yield node["type"], node
        for value in node.values():
            yield from _types(value)
    elif isinstance(node, list):
        for value in node:
            yield from _types(value)
