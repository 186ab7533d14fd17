"""Downstream fine-tuning: task loading and seeded classification runs."""
