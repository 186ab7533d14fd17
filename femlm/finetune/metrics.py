"""Fine-tuning's scores: accuracy, macro-F1 and their mean and spread over seeds."""

from __future__ import annotations


def accuracy(gold: list[int], pred: list[int]) -> float:
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / max(1, len(gold))


def macro_f1(gold: list[int], pred: list[int]) -> float:
    """Unweighted mean of per-class F1 over the classes in ``gold`` or ``pred``.

    A class that is predicted but never true scores 0, as in scikit-learn.
    """
    scores = []
    for c in sorted(set(gold) | set(pred)):
        tp = sum(g == c and p == c for g, p in zip(gold, pred, strict=True))
        fp = sum(g != c and p == c for g, p in zip(gold, pred, strict=True))
        fn = sum(g == c and p != c for g, p in zip(gold, pred, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / max(1, len(scores))


METRICS = ("accuracy", "macro_f1")


def dev_scores(gold: list[int], pred: list[int]) -> dict[str, float]:
    """Every metric ``FinetuneConfig.metric`` can name, keyed by that name."""
    return {"accuracy": accuracy(gold, pred), "macro_f1": macro_f1(gold, pred)}
