"""Datagram batches (issue 5)."""
