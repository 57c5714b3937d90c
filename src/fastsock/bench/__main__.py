import sys

from fastsock.bench.cli import main

sys.exit(main())
