"""The Controlling Function of the IM server (OMA SIMPLE IM §7.2, §8.3, §9.3).

This package holds the pager exploder (:mod:`.exploder`: the pure core; :mod:`.pager`: the
running role); the conference focus lives next to it.
"""

from simpleim.server.controlling.exploder import EXPLODER_USER, ExploderLimits
from simpleim.server.controlling.pager import PagerExploder, Terminator

__all__ = ["EXPLODER_USER", "ExploderLimits", "PagerExploder", "Terminator"]
