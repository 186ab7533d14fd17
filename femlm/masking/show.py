"""``femlm mask``: print every strategy's views of a text, masked tokens marked."""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import torch

from femlm.errors import FemlmError
from femlm.masking.keyed import KeyedGenerator, mix_ints
from femlm.masking.samplers import sample_masks
from femlm.masking.strategies import STRATEGIES, MaskingSpec

SAMPLE_TEXT = (
    "Random masks make the gradient of a masked language model noisy. "
    "Fully explored masking splits the tokens of each sentence into disjoint groups "
    "and predicts every token exactly once in the same step."
)

# Enough common words that the sample reads naturally; anything else falls
# back to letters, so the built-in tokenizer never needs a download.
_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "it",
    "that",
    "for",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "or",
    "from",
    "at",
    "an",
    "which",
    "not",
    "but",
    "have",
    "has",
    "had",
    "were",
    "been",
    "their",
    "they",
    "them",
    "there",
    "these",
    "those",
    "its",
    "can",
    "will",
    "would",
    "may",
    "more",
    "most",
    "one",
    "two",
    "three",
    "each",
    "every",
    "all",
    "any",
    "some",
    "many",
    "much",
    "other",
    "than",
    "then",
    "so",
    "such",
    "only",
    "also",
    "into",
    "over",
    "under",
    "about",
    "after",
    "before",
    "same",
    "step",
    "steps",
    "model",
    "models",
    "language",
    "masked",
    "mask",
    "masks",
    "masking",
    "random",
    "gradient",
    "gradients",
    "noisy",
    "noise",
    "token",
    "tokens",
    "word",
    "words",
    "sentence",
    "sentences",
    "text",
    "split",
    "splits",
    "group",
    "groups",
    "disjoint",
    "fully",
    "explored",
    "exploring",
    "predict",
    "predicts",
    "predicted",
    "once",
    "exactly",
    "view",
    "views",
    "train",
    "training",
    "data",
    "variance",
    "make",
    "makes",
    "made",
    "time",
    "first",
    "last",
    "new",
]


def builtin_tokenizer() -> Any:
    """A small uncased WordPiece tokenizer built in memory from a fixed word list."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece

    from femlm.data.tokenizer import SPECIAL_TOKENS, as_transformers, bert_template

    letters = list(string.ascii_lowercase + string.digits)
    pieces = letters + ["##" + c for c in letters] + list(string.punctuation)
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(SPECIAL_TOKENS + _WORDS + pieces))}
    tok = Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = bert_template(vocab["[CLS]"], vocab["[SEP]"])
    return as_transformers(tok)


def tokenizer_or_builtin(path: str | None) -> Any:
    """A tokenizer from a local folder, or the built-in one when ``path`` is None."""
    if path is None:
        return builtin_tokenizer()
    from femlm.data.tokenizer import load_tokenizer as load_local

    return load_local(path)


def render_views(
    text: str,
    tokenizer: Any,
    strategies: Sequence[str] = STRATEGIES,
    views: int | None = None,
    rate: float | None = None,
    seed: int = 0,
) -> str:
    """One block per strategy: each view's tokens with masked ones in ``[brackets]``."""
    if not text.strip():
        raise FemlmError("the text to mask is empty")
    enc = tokenizer(text, return_special_tokens_mask=True, truncation=True, max_length=512)
    ids = torch.tensor([enc["input_ids"]])
    maskable = torch.tensor([enc["special_tokens_mask"]]) == 0
    from femlm.data.words import WordStarts

    # The words pre-training stores with its blocks, so the views shown are the trained ones.
    word_ids = torch.from_numpy(WordStarts.of(tokenizer).word_ids(ids.numpy())).long()
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    blocks = []
    # The same rule as pretrain: a views/rate pair that disagrees is an error.
    specs = [MaskingSpec.resolve(strategy, views, rate) for strategy in strategies]
    for spec in specs:
        gen = KeyedGenerator(mix_ints(seed, 0, torch.tensor([0])))
        masks = sample_masks(ids, maskable, spec, generator=gen, word_ids=word_ids)[:, 0]
        lines = [f"{spec.strategy}  ({masks.shape[0]} view{'s' if masks.shape[0] > 1 else ''})"]
        for v, mask in enumerate(masks.tolist()):
            shown = " ".join(f"[{t}]" if m else t for t, m in zip(tokens, mask, strict=True))
            lines.append(f"  view {v + 1:>2} {sum(mask):>3} masked | {shown}")
        covered = masks.any(0)
        lines.append(
            f"  tokens predicted at least once: {int(covered.sum())}/{int(maskable.sum())}"
        )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def read_text(path: str) -> str:
    """The text of a UTF-8 file, or a one-line error naming what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise FemlmError(f"no such file: {path}") from None
    except UnicodeDecodeError as err:
        raise FemlmError(f"{path} is not UTF-8 text (byte {err.start})") from None
