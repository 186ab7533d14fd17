"""Reports: run loading and statistics (shared), then the writer and its sections."""
