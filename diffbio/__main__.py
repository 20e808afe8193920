"""``python -m diffbio`` is the ``diffbio`` command line."""

from diffbio.cli import main

raise SystemExit(main())
