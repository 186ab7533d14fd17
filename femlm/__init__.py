"""femlm: masked-language-model pre-training with fully-explored masking."""

from femlm.errors import FemlmError

__version__ = "0.1.0"

__all__ = ["FemlmError", "__version__"]
