"""Feature tags and service identifiers used by the client (RFC 3840/3841, OMA, GSMA).

Pure data + builders: the Contact of our REGISTER/INVITE/OPTIONS, Accept-Contact values and
the decoding of a peer's Contact into a set of services.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from simpleim.sip.headers import Address, feature_tag_values, feature_tags
from simpleim.sip.uri import Params

__all__ = [
    "SIP_IM",
    "LARGE_MESSAGE",
    "CS_VOICE",
    "ICSI_CPM_MSG",
    "ICSI_CPM_SESSION",
    "ICSI_CPM_FT",
    "ICSI_CPM_LARGEMSG",
    "IARI_IMAGE_SHARE",
    "IARI_FT",
    "IARI_FT_THUMB",
    "IARI_FT_STANDFW",
    "IARI_IM",
    "ALL_ICSI",
    "ALL_IARI",
    "ServiceSet",
    "contact_params",
    "contact_value",
    "services_of",
    "USER_AGENT",
    "ALLOW",
    "ACCEPT",
]

#: OMA SIMPLE IM §5.2.1 / §7.1.1.1: the IM feature tag in Contact and Accept-Contact.
SIP_IM = "+g.oma.sip-im"
#: OMA SIMPLE IM §9.1.1.2: large message mode feature tag (Accept-Contact of the INVITE).
LARGE_MESSAGE = "+g.oma.sip-im.large-message"
#: GSMA IR.79 §2.3: the CS voice tag in OPTIONS Accept-Contact and image share INVITEs.
CS_VOICE = "+g.3gpp.cs-voice"
ICSI_TAG = "+g.3gpp.icsi-ref"
IARI_TAG = "+g.3gpp.iari-ref"

# OMA CPM 2.0 conversation function: communication service identifiers (ICSI).
ICSI_CPM_MSG = "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.msg"
ICSI_CPM_SESSION = "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session"
ICSI_CPM_FT = "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.filetransfer"
ICSI_CPM_LARGEMSG = "urn:urn-7:3gpp-service.ims.icsi.oma.cpm.largemsg"
# GSMA IR.79 §2.2 image share IARI and the RCS application identifiers (IARI).
IARI_IMAGE_SHARE = "urn:urn-7:3gpp-application.ims.iari.gsma-is"
IARI_FT = "urn:urn-7:3gpp-application.ims.iari.rcse.ft"
IARI_FT_THUMB = "urn:urn-7:3gpp-application.ims.iari.rcs.ftthumb"
IARI_FT_STANDFW = "urn:urn-7:3gpp-application.ims.iari.rcs.ftstandfw"
IARI_IM = "urn:urn-7:3gpp-application.ims.iari.rcse.im"

ALL_ICSI = (ICSI_CPM_MSG, ICSI_CPM_SESSION, ICSI_CPM_FT, ICSI_CPM_LARGEMSG)
ALL_IARI = (IARI_IMAGE_SHARE, IARI_FT, IARI_FT_THUMB, IARI_FT_STANDFW, IARI_IM)

#: OMA SIMPLE IM §5.2.1 / §7.1.1.1: User-Agent "IM-client/OMA1.0" plus our product token.
USER_AGENT = "IM-client/OMA1.0 simpleim/0.1"
#: OMA SIMPLE IM §7.1.1.1: SHOULD list every supported method in Allow.
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, UPDATE"
#: RFC 3261 §20.1: the bodies we understand.
ACCEPT = "application/sdp, message/cpim, text/plain, message/imdn+xml, " \
    "application/im-iscomposing+xml, multipart/mixed"


@dataclass(frozen=True)
class ServiceSet:
    """The services of one contact: boolean tags, ICSIs and IARIs (decoded URNs)."""

    tags: frozenset[str] = frozenset()
    icsi: frozenset[str] = frozenset()
    iari: frozenset[str] = frozenset()

    @property
    def im(self) -> bool:
        return SIP_IM in self.tags or ICSI_CPM_MSG in self.icsi or IARI_IM in self.iari

    @property
    def image_share(self) -> bool:
        # IR.79 §2.3: the image share IARI in the Contact of the 200 to OPTIONS.
        return IARI_IMAGE_SHARE in self.iari

    @property
    def file_transfer(self) -> bool:
        return ICSI_CPM_FT in self.icsi or IARI_FT in self.iari

    def names(self) -> list[str]:
        """Short names for display / JSON."""
        out: list[str] = []
        checks = (("im", self.im), ("session", ICSI_CPM_SESSION in self.icsi or self.im),
                  ("largemsg", ICSI_CPM_LARGEMSG in self.icsi or LARGE_MESSAGE in self.tags),
                  ("filetransfer", self.file_transfer),
                  ("ftthumb", IARI_FT_THUMB in self.iari),
                  ("ftstandfw", IARI_FT_STANDFW in self.iari),
                  ("imageshare", self.image_share), ("cs-voice", CS_VOICE in self.tags))
        for name, on in checks:
            if on:
                out.append(name)
        return out


def contact_params(*, icsi: Iterable[str] = ALL_ICSI, iari: Iterable[str] = ALL_IARI,
                   cs_voice: bool = True, large_message: bool = False) -> Params:
    """Feature parameters of our Contact (OMA §5.2.1: ``+g.oma.sip-im``; CPM ICSIs; IR.79)."""
    parts = [SIP_IM]
    if large_message:
        parts.append(LARGE_MESSAGE)
    if cs_voice:
        parts.append(CS_VOICE)
    icsi_l = list(icsi)
    iari_l = list(iari)
    if icsi_l:
        parts.append(f'{ICSI_TAG}="{",".join(_enc(v) for v in icsi_l)}"')
    if iari_l:
        parts.append(f'{IARI_TAG}="{",".join(_enc(v) for v in iari_l)}"')
    return Params.parse(";" + ";".join(parts), where="Contact")


def _enc(urn: str) -> str:
    # 3GPP TS 24.229 §7.9.2: URN values in feature tags are percent-encoded (":" -> "%3A").
    return urn.replace(":", "%3A")


def contact_value(uri: str, params: Params | None = None) -> str:
    """``<uri>;+g.oma.sip-im;...`` - the Contact header value."""
    p = contact_params() if params is None else params
    return f"<{uri}>{p}"


def services_of(contacts: Iterable[Address]) -> ServiceSet:
    """Decode the feature tags of a peer's Contact(s) (RFC 3840 §9)."""
    tags: set[str] = set()
    icsi: set[str] = set()
    iari: set[str] = set()
    for addr in contacts:
        found = feature_tags(addr.params)
        for name in found:
            if name not in (ICSI_TAG, IARI_TAG):
                tags.add(name)
        icsi.update(feature_tag_values(addr.params, ICSI_TAG) or [])
        iari.update(feature_tag_values(addr.params, IARI_TAG) or [])
    return ServiceSet(frozenset(tags), frozenset(icsi), frozenset(iari))
