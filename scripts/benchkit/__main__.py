"""Entry point: `python scripts/benchkit [options]` (what scripts/bench runs), or
`python -m benchkit` with scripts/ on the path."""

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a directory: Python put the package's own directory first on sys.path, where its
    # module names could shadow others. Put its parent there instead and import it by name.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from benchkit.cli import main
else:
    from .cli import main

raise SystemExit(main())
