"""`femlm data fetch`: package sources, their parsers, text cleaners and corpus hygiene."""
