"""``python -m deltanet``: the ``deltanet`` command."""

from .cli import main

raise SystemExit(main())
