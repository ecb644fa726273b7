"""Conference state documents (``application/conference-info+xml``, RFC 4575).

Build and parse full / partial notifications, and fold a partial notification
into the full state we hold (:func:`apply_notification`, RFC 4575 §4.6: the
``version`` grows by one per notification; ``full`` replaces, ``partial``
merges by key - ``entity`` for users and endpoints, ``id`` for media -
and ``deleted`` removes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from xml.etree.ElementTree import Element

from simpleim.errors import ContentError

from .xml import XmlLimits, XmlNode, child, child_text, children, parse_xml, qname, text_node

__all__ = [
    "CONFERENCE_INFO_CONTENT_TYPE",
    "CONFERENCE_INFO_NS",
    "ConferenceDescription",
    "ConferenceInfo",
    "ConferenceState",
    "ConferenceVersionError",
    "ElementState",
    "Endpoint",
    "ExecutionInfo",
    "Media",
    "OMA_IM_NS",
    "YOUROWN",
    "UriEntry",
    "User",
    "apply_notification",
    "notification",
    "parse_conference_info",
]

CONFERENCE_INFO_NS = "urn:ietf:params:xml:ns:conference-info"
CONFERENCE_INFO_CONTENT_TYPE = "application/conference-info+xml"
#: OMA SIMPLE IM Appendix M: the namespace of the ``yourown`` attribute of ``<user>``.
OMA_IM_NS = "urn:oma:xml:im"
#: the qualified name of ``yourown`` in :attr:`User.extra_attributes`
YOUROWN = "{" + OMA_IM_NS + "}yourown"
_NS = CONFERENCE_INFO_NS


class ConferenceVersionError(ContentError):
    """A partial notification does not follow the version we hold (RFC 4575 §4.6).

    The subscriber should fetch the full state again (re-SUBSCRIBE).
    """


class ElementState(StrEnum):
    FULL = "full"
    PARTIAL = "partial"
    DELETED = "deleted"


def _state(elem: Element, where: str) -> ElementState:
    value = elem.get("state", "full")
    try:
        return ElementState(value)
    except ValueError:
        raise ContentError(f"bad state {value!r}", status=400, where=where) from None


@dataclass(frozen=True)
class UriEntry:
    uri: str
    display_text: str | None = None
    purpose: str | None = None

    def to_xml(self) -> XmlNode:
        kids = [XmlNode("uri", text=self.uri), *text_node("display-text", self.display_text),
                *text_node("purpose", self.purpose)]
        return XmlNode("entry", children=tuple(kids))


def _uris(elem: Element | None) -> tuple[UriEntry, ...]:
    if elem is None:
        return ()
    out = []
    for e in children(elem, _NS, "entry"):
        uri = child_text(e, _NS, "uri")
        if uri:
            out.append(UriEntry(uri, child_text(e, _NS, "display-text"),
                                child_text(e, _NS, "purpose")))
    return tuple(out)


def _int(text: str | None, where: str) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not text.isascii():
        raise ContentError(f"{where} must be an integer", status=400, where=where)
    return int(text)


def _bool(text: str | None, where: str) -> bool | None:
    if text is None:
        return None
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ContentError(f"{where} must be a boolean", status=400, where=where)


@dataclass(frozen=True)
class ConferenceDescription:
    display_text: str | None = None
    subject: str | None = None
    free_text: str | None = None
    keywords: str | None = None
    conf_uris: tuple[UriEntry, ...] = ()
    service_uris: tuple[UriEntry, ...] = ()
    maximum_user_count: int | None = None

    def to_xml(self) -> XmlNode:
        kids = [*text_node("display-text", self.display_text),
                *text_node("subject", self.subject), *text_node("free-text", self.free_text),
                *text_node("keywords", self.keywords)]
        if self.conf_uris:
            kids.append(XmlNode("conf-uris", children=tuple(u.to_xml() for u in self.conf_uris)))
        if self.service_uris:
            kids.append(XmlNode("service-uris",
                                children=tuple(u.to_xml() for u in self.service_uris)))
        if self.maximum_user_count is not None:
            kids.append(XmlNode("maximum-user-count", text=str(self.maximum_user_count)))
        return XmlNode("conference-description", children=tuple(kids))


@dataclass(frozen=True)
class ConferenceState:
    user_count: int | None = None
    active: bool | None = None
    locked: bool | None = None

    def to_xml(self) -> XmlNode:
        kids = [*text_node("user-count", None if self.user_count is None
                           else str(self.user_count)),
                *text_node("active", None if self.active is None else str(self.active).lower()),
                *text_node("locked", None if self.locked is None else str(self.locked).lower())]
        return XmlNode("conference-state", children=tuple(kids))


@dataclass(frozen=True)
class ExecutionInfo:
    """``joining-info`` / ``disconnection-info`` / ``modified``: when, reason, by."""

    when: str | None = None
    reason: str | None = None
    by: str | None = None

    def to_xml(self, tag: str) -> XmlNode:
        return XmlNode(tag, children=(*text_node("when", self.when),
                                      *text_node("reason", self.reason),
                                      *text_node("by", self.by)))


def _exec(elem: Element | None) -> ExecutionInfo | None:
    if elem is None:
        return None
    return ExecutionInfo(child_text(elem, _NS, "when"), child_text(elem, _NS, "reason"),
                         child_text(elem, _NS, "by"))


@dataclass(frozen=True)
class Media:
    id: str
    display_text: str | None = None
    type: str | None = None
    label: str | None = None
    src_id: str | None = None
    status: str | None = None

    def to_xml(self) -> XmlNode:
        kids = (*text_node("display-text", self.display_text), *text_node("type", self.type),
                *text_node("label", self.label), *text_node("src-id", self.src_id),
                *text_node("status", self.status))
        return XmlNode("media", (("id", self.id),), kids)


@dataclass(frozen=True)
class Endpoint:
    entity: str
    state: ElementState = ElementState.FULL
    display_text: str | None = None
    status: str | None = None
    joining_method: str | None = None
    joining_info: ExecutionInfo | None = None
    disconnection_method: str | None = None
    disconnection_info: ExecutionInfo | None = None
    media: tuple[Media, ...] = ()

    def to_xml(self) -> XmlNode:
        kids: list[XmlNode] = [*text_node("display-text", self.display_text),
                               *text_node("status", self.status),
                               *text_node("joining-method", self.joining_method)]
        if self.joining_info is not None:
            kids.append(self.joining_info.to_xml("joining-info"))
        kids += text_node("disconnection-method", self.disconnection_method)
        if self.disconnection_info is not None:
            kids.append(self.disconnection_info.to_xml("disconnection-info"))
        kids += [m.to_xml() for m in self.media]
        return XmlNode("endpoint", (("entity", self.entity), ("state", self.state.value)),
                       tuple(kids))


@dataclass(frozen=True)
class User:
    entity: str
    state: ElementState = ElementState.FULL
    display_text: str | None = None
    roles: tuple[str, ...] = ()
    languages: str | None = None
    endpoints: tuple[Endpoint, ...] = ()
    #: attributes from other namespaces (e.g. OMA's ``yourown``), as (qualified name, value).
    extra_attributes: tuple[tuple[str, str], ...] = ()

    def to_xml(self) -> XmlNode:
        kids: list[XmlNode] = [*text_node("display-text", self.display_text)]
        if self.roles:
            kids.append(XmlNode("roles", children=tuple(XmlNode("entry", text=r)
                                                        for r in self.roles)))
        kids += text_node("languages", self.languages)
        kids += [e.to_xml() for e in self.endpoints]
        attrs = [("entity", self.entity), ("state", self.state.value)]
        for name, value in self.extra_attributes:
            if name.startswith("{" + OMA_IM_NS + "}"):
                # Appendix M of OMA SIMPLE IM: ``yourown`` (declared on the root element)
                attrs.append(("oma:" + name.split("}", 1)[1], value))
        return XmlNode("user", tuple(attrs), tuple(kids))


@dataclass(frozen=True)
class ConferenceInfo:
    entity: str
    state: ElementState = ElementState.FULL
    version: int | None = None
    description: ConferenceDescription | None = None
    conference_state: ConferenceState | None = None
    users: tuple[User, ...] = ()
    users_state: ElementState = ElementState.FULL

    def user(self, entity: str) -> User | None:
        return next((u for u in self.users if u.entity == entity), None)

    def to_bytes(self) -> bytes:
        attrs: list[tuple[str, str]] = [("xmlns", _NS)]
        if any(n.startswith("{" + OMA_IM_NS + "}") for u in self.users
               for n, _ in u.extra_attributes):
            attrs.append(("xmlns:oma", OMA_IM_NS))
        attrs += [("entity", self.entity), ("state", self.state.value)]
        if self.version is not None:
            attrs.append(("version", str(self.version)))
        kids: list[XmlNode] = []
        if self.description is not None:
            kids.append(self.description.to_xml())
        if self.conference_state is not None:
            kids.append(self.conference_state.to_xml())
        if self.users or self.users_state is not ElementState.FULL:
            kids.append(XmlNode("users", (("state", self.users_state.value),),
                                tuple(u.to_xml() for u in self.users)))
        return XmlNode("conference-info", tuple(attrs), tuple(kids)).to_bytes()


def _parse_media(elem: Element) -> Media:
    mid = elem.get("id")
    if not mid:
        raise ContentError("media without id", status=400, where="media")
    return Media(mid, child_text(elem, _NS, "display-text"), child_text(elem, _NS, "type"),
                 child_text(elem, _NS, "label"), child_text(elem, _NS, "src-id"),
                 child_text(elem, _NS, "status"))


def _parse_endpoint(elem: Element) -> Endpoint:
    entity = elem.get("entity")
    if not entity:
        raise ContentError("endpoint without entity", status=400, where="endpoint")
    return Endpoint(
        entity=entity, state=_state(elem, "endpoint"),
        display_text=child_text(elem, _NS, "display-text"),
        status=child_text(elem, _NS, "status"),
        joining_method=child_text(elem, _NS, "joining-method"),
        joining_info=_exec(child(elem, _NS, "joining-info")),
        disconnection_method=child_text(elem, _NS, "disconnection-method"),
        disconnection_info=_exec(child(elem, _NS, "disconnection-info")),
        media=tuple(_parse_media(m) for m in children(elem, _NS, "media")),
    )


def _parse_user(elem: Element) -> User:
    entity = elem.get("entity")
    if not entity:
        raise ContentError("user without entity", status=400, where="user")
    roles_el = child(elem, _NS, "roles")
    roles = tuple((e.text or "").strip() for e in children(roles_el, _NS, "entry")) \
        if roles_el is not None else ()
    extra = tuple((k, v) for k, v in elem.attrib.items() if k not in ("entity", "state"))
    return User(entity=entity, state=_state(elem, "user"),
                display_text=child_text(elem, _NS, "display-text"), roles=roles,
                languages=child_text(elem, _NS, "languages"),
                endpoints=tuple(_parse_endpoint(e) for e in children(elem, _NS, "endpoint")),
                extra_attributes=extra)


def parse_conference_info(data: bytes | str,
                          limits: XmlLimits = XmlLimits()) -> ConferenceInfo:  # noqa: B008
    root = parse_xml(data, limits, what="conference-info")
    if root.tag != qname(_NS, "conference-info"):
        raise ContentError(f"root element is {root.tag}, not conference-info", status=400,
                           where="conference-info")
    entity = root.get("entity")
    if not entity:
        raise ContentError("conference-info without entity", status=400,
                           where="conference-info")
    desc_el = child(root, _NS, "conference-description")
    desc = None
    if desc_el is not None:
        desc = ConferenceDescription(
            display_text=child_text(desc_el, _NS, "display-text"),
            subject=child_text(desc_el, _NS, "subject"),
            free_text=child_text(desc_el, _NS, "free-text"),
            keywords=child_text(desc_el, _NS, "keywords"),
            conf_uris=_uris(child(desc_el, _NS, "conf-uris")),
            service_uris=_uris(child(desc_el, _NS, "service-uris")),
            maximum_user_count=_int(child_text(desc_el, _NS, "maximum-user-count"),
                                    "maximum-user-count"),
        )
    st_el = child(root, _NS, "conference-state")
    cstate = None
    if st_el is not None:
        cstate = ConferenceState(_int(child_text(st_el, _NS, "user-count"), "user-count"),
                                 _bool(child_text(st_el, _NS, "active"), "active"),
                                 _bool(child_text(st_el, _NS, "locked"), "locked"))
    users_el = child(root, _NS, "users")
    users: tuple[User, ...] = ()
    users_state = ElementState.FULL
    if users_el is not None:
        users = tuple(_parse_user(u) for u in children(users_el, _NS, "user"))
        users_state = _state(users_el, "users")
        if users_el.get("state") is None and root.get("state") == ElementState.PARTIAL.value:
            # A partial document's <users> without a state attribute is read as a partial
            # update (what the senders of such documents mean, RFC 4575 §4.6): replacing the
            # list with the one or two users it names would forget everyone else.
            users_state = ElementState.PARTIAL
    return ConferenceInfo(entity=entity, state=_state(root, "conference-info"),
                          version=_int(root.get("version"), "version"), description=desc,
                          conference_state=cstate, users=users, users_state=users_state)


# ----------------------------------------------------------------------------- merging

def _merge_endpoint(old: Endpoint, new: Endpoint) -> Endpoint:
    if new.state is ElementState.FULL:
        return new
    media = {m.id: m for m in old.media}
    for m in new.media:
        media[m.id] = m
    return Endpoint(
        entity=old.entity, state=ElementState.FULL,
        display_text=new.display_text or old.display_text,
        status=new.status or old.status,
        joining_method=new.joining_method or old.joining_method,
        joining_info=new.joining_info or old.joining_info,
        disconnection_method=new.disconnection_method or old.disconnection_method,
        disconnection_info=new.disconnection_info or old.disconnection_info,
        media=tuple(media.values()),
    )


def _merge_user(old: User, new: User) -> User:
    if new.state is ElementState.FULL:
        return new
    endpoints = {e.entity: e for e in old.endpoints}
    for e in new.endpoints:
        if e.state is ElementState.DELETED:
            endpoints.pop(e.entity, None)
        elif e.entity in endpoints:
            endpoints[e.entity] = _merge_endpoint(endpoints[e.entity], e)
        else:
            endpoints[e.entity] = replace(e, state=ElementState.FULL)
    return User(entity=old.entity, state=ElementState.FULL,
                display_text=new.display_text or old.display_text,
                roles=new.roles or old.roles, languages=new.languages or old.languages,
                endpoints=tuple(endpoints.values()),
                extra_attributes=new.extra_attributes or old.extra_attributes)


def _without_deleted(info: ConferenceInfo) -> ConferenceInfo:
    """A full document listing a user as ``deleted`` (RFC 4575 §5.6.2) does not list it."""
    if all(u.state is not ElementState.DELETED for u in info.users):
        return info
    return replace(info, users=tuple(u for u in info.users
                                     if u.state is not ElementState.DELETED))


def apply_notification(current: ConferenceInfo | None,
                       update: ConferenceInfo) -> ConferenceInfo:
    """Fold ``update`` into ``current`` (RFC 4575 §4.6).

    * A ``full`` document replaces what we hold (when its version is newer).
    * A version not greater than ours is stale: ``current`` is returned unchanged.
    * A ``partial`` document must carry exactly our version + 1, otherwise
      :class:`ConferenceVersionError` (fetch the full state again).
    """
    if current is None:
        if update.state is not ElementState.FULL:
            raise ConferenceVersionError("partial notification without full state", status=400,
                                         where="conference-info")
        return _without_deleted(update)
    if update.entity != current.entity:
        raise ContentError("notification for another conference", status=400,
                           where="conference-info/@entity")
    if update.version is not None and current.version is not None:
        if update.version <= current.version:
            return current
        if update.state is ElementState.PARTIAL and update.version != current.version + 1:
            raise ConferenceVersionError(
                f"version gap: have {current.version}, got {update.version}", status=400,
                where="conference-info/@version")
    if update.state is ElementState.FULL:
        return _without_deleted(update)
    if update.state is ElementState.DELETED:
        return replace(update, users=())
    users = {u.entity: u for u in current.users}
    if update.users_state is ElementState.FULL and update.users:
        users = {u.entity: replace(u, state=ElementState.FULL) for u in update.users
                 if u.state is not ElementState.DELETED}
    else:
        for u in update.users:
            if u.state is ElementState.DELETED:
                users.pop(u.entity, None)
            elif u.entity in users:
                users[u.entity] = _merge_user(users[u.entity], u)
            else:
                users[u.entity] = replace(u, state=ElementState.FULL)
    return ConferenceInfo(
        entity=current.entity, state=ElementState.FULL,
        version=update.version if update.version is not None else current.version,
        description=update.description or current.description,
        conference_state=update.conference_state or current.conference_state,
        users=tuple(users.values()), users_state=ElementState.FULL,
    )


def notification(entity: str, version: int, users: tuple[User, ...], *, full: bool,
                 user_count: int | None = None, active: bool | None = None) -> ConferenceInfo:
    """The document of one NOTIFY (RFC 4575 §4.6): ``full`` state, or ``partial`` with only
    the ``users`` that changed (each ``partial``, or ``deleted``); ``version`` is the
    subscription's counter, one more per NOTIFY."""
    state = ElementState.FULL if full else ElementState.PARTIAL
    conf_state = ConferenceState(user_count=user_count, active=active) \
        if user_count is not None or active is not None else None
    return ConferenceInfo(entity=entity, state=state, version=version,
                          conference_state=conf_state, users=users,
                          users_state=state)
