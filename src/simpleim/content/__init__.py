"""Message content formats: CPIM (RFC 3862), IMDN (RFC 5438), is-composing (RFC 3994),
conference-info (RFC 4575), resource-lists / recipient-list (RFC 4826, 5364-5366),
file-transfer bodies, content encodings and hardened XML."""

from .conference_info import (
    ConferenceInfo,
    ConferenceVersionError,
    apply_notification,
    parse_conference_info,
)
from .cpim import (
    ANONYMOUS,
    CPIM_NS,
    IMDN_NS,
    CpimAddress,
    CpimDateTime,
    CpimHeader,
    CpimMessage,
    build_cpim,
    parse_cpim,
)
from .encoding import UnsupportedEncodingError, decode_body, encode_body
from .filetransfer import BodyPart, FileTransferBody, split_file_transfer_body
from .imdn import (
    DispositionRequest,
    Imdn,
    NotificationType,
    Status,
    build_notification,
    notification_to_send,
    parse_imdn,
)
from .iscomposing import ComposeReceiver, ComposeSender, IsComposing, parse_iscomposing
from .resource_lists import ResourceLists, build_recipient_list, parse_resource_lists
from .xml import XmlLimits, parse_xml

__all__ = [
    "ANONYMOUS",
    "CPIM_NS",
    "IMDN_NS",
    "BodyPart",
    "ComposeReceiver",
    "ComposeSender",
    "ConferenceInfo",
    "ConferenceVersionError",
    "CpimAddress",
    "CpimDateTime",
    "CpimHeader",
    "CpimMessage",
    "DispositionRequest",
    "FileTransferBody",
    "Imdn",
    "IsComposing",
    "NotificationType",
    "ResourceLists",
    "Status",
    "UnsupportedEncodingError",
    "XmlLimits",
    "apply_notification",
    "build_cpim",
    "build_notification",
    "build_recipient_list",
    "decode_body",
    "encode_body",
    "notification_to_send",
    "parse_conference_info",
    "parse_cpim",
    "parse_imdn",
    "parse_iscomposing",
    "parse_resource_lists",
    "parse_xml",
    "split_file_transfer_body",
]
