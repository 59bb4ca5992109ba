"""``python -m aurora.setup``: the same as the ``aurora_setup`` console script."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
