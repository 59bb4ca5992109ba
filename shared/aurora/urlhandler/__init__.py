"""pyserial URL handlers for ser2net's network ports (``serial.protocol_handler_packages``).

``aurora.transport`` puts this package first in pyserial's search list, so ``serial_for_url`` opens
``tcp://`` with ``protocol_tcp.Serial`` and ``rfc2217://`` with ``protocol_rfc2217.Serial`` instead of
pyserial's own ``rfc2217://`` client. Both differ from pyserial where ser2net needs it: ser2net
(docs/protocol.md#ser2net) writes its errors *into* the stream and then hangs up, so every byte received
before a hang-up stays readable (``pending()``), and a close does not sleep pyserial's 0.3 s "give
the server some time": with ``kickolduser`` a reconnect needs no pause.
"""
