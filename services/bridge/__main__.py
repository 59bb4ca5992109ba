"""``python -m aurora.bridge``: the same as ``aurora_mqtt_bridge``."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
