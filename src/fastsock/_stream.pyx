"""The file-like stream (issue 3)."""
