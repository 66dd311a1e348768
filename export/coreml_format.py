"""Core ML format (being written)."""
