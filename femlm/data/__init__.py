"""Data: corpus readers, tokenizer training and loading, packing into blocks, the block cache."""
