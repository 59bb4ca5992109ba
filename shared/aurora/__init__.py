"""The WaterFurnace Aurora library every service of the suite uses.

Modules: ``rtu`` (frames), ``registers`` and ``render`` (the register map and how it prints),
``query`` (the query grammar and request packing), ``transport`` (serial lines and RTU
transactions), ``ports`` (any port argument as a ``bus``), ``urls``, ``dump``, ``simulator``,
``sniffer``, ``mqtt``, ``rpc`` and ``rpc_client`` (the ``$modbus`` protocol).
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__"]

__version__: str  # set by __getattr__ on first use


def __getattr__(name: str) -> Any:
    # The version is read on first use: importlib.metadata costs more to import than the whole
    # of what ``aurora_fetch tcp://…`` needs (issue 15), and only --version and the logs need it.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    global __version__
    try:
        __version__ = version("aurora-suite")
    except PackageNotFoundError:  # running from a checkout that was never installed
        __version__ = "0+unknown"
    return __version__
