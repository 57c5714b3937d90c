"""The benchmark: ``python -m fastsock.bench`` runs the workloads of
WORKLOADS.md, each against the stdlib and plain C in one run (cli.py).
The C references ship in ``c/`` and are built on first use (native.py)."""
