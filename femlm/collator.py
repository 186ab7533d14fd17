"""The collator's historical import path, kept for the public API in the README.

The collator lives in :mod:`femlm.masking.collator`.
"""

from femlm.masking.collator import MaskingCollator, epoch_callback

__all__ = ["MaskingCollator", "epoch_callback"]
