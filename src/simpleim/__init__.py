"""simpleim: OMA SIMPLE IM / OMA CPM / GSMA RCS messaging in Python.

Sans-I/O protocol cores (:mod:`simpleim.sip`, :mod:`simpleim.sdp`,
:mod:`simpleim.msrp`, :mod:`simpleim.content`), thin asyncio layers
(:mod:`simpleim.transport`), the IM server (:mod:`simpleim.server`), the
client library (:mod:`simpleim.client`) and the ``simpleim`` CLI.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
