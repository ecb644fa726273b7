"""The Controlling Function of the IM server (OMA SIMPLE IM §7.2, §8.3, §9.3).

This package holds the pager exploder (:mod:`.exploder`: the pure core; :mod:`.pager`: the
running role) and the conference focus (:mod:`.conference`: the pure core; :mod:`.focus`:
the running role with the MSRP switch and the conference event package), group file
transfer (:mod:`.groupft`), REFER in a conference (:mod:`.refer`) and large message mode to a
group (:mod:`.large`, §9.3).
"""

from simpleim.server.controlling.conference import CONFERENCE_FACTORY_USER, ConferenceLimits
from simpleim.server.controlling.exploder import EXPLODER_USER, ExploderLimits
from simpleim.server.controlling.focus import ConferenceFocus
from simpleim.server.controlling.large import GroupLargeMessages, LargeKeeper
from simpleim.server.controlling.pager import PagerExploder, Terminator

__all__ = ["CONFERENCE_FACTORY_USER", "ConferenceFocus", "ConferenceLimits", "EXPLODER_USER",
           "ExploderLimits", "GroupLargeMessages", "LargeKeeper", "PagerExploder", "Terminator"]
