"""The WaterFurnace Aurora library every service of the suite uses.

Modules: ``rtu`` (frames), ``registers`` and ``render`` (the register map and how it prints),
``query`` (the query grammar and request packing), ``transport`` (ports from URLs), ``bus``,
``dump``, ``simulator``, ``sniffer``, ``mqtt``, ``rpc`` and ``rpc_client`` (the ``$modbus`` protocol).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aurora-suite")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
