"""simpleim.sip: the SIP core (sans-I/O).

Message layer: :func:`parse_message`, :class:`SipRequest`, :class:`SipResponse`,
:class:`Headers`, typed header values and URIs.  Append further exports below.
"""

from simpleim.sip.framing import KeepAlive, SipFramingError, StreamFramer
from simpleim.sip.headers import (
    Address,
    ContactPattern,
    CSeq,
    MediaType,
    SessionExpires,
    Via,
    canonical_name,
    encode_feature_tag,
    feature_tag_values,
    feature_tags,
    with_feature_tag,
)
from simpleim.sip.message import (
    REASON_PHRASES,
    Headers,
    SipLimits,
    SipMessage,
    SipRequest,
    SipResponse,
    parse_message,
)
from simpleim.sip.multipart import MultipartPart, build_multipart, parse_multipart
from simpleim.sip.uri import AbsoluteUri, Params, SipUri, TelUri, Uri, parse_uri
from simpleim.sip.validate import validate_message, validate_request

__all__ = [
    "AbsoluteUri",
    "Address",
    "ContactPattern",
    "CSeq",
    "Headers",
    "KeepAlive",
    "MediaType",
    "MultipartPart",
    "Params",
    "REASON_PHRASES",
    "SessionExpires",
    "SipFramingError",
    "SipLimits",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "StreamFramer",
    "TelUri",
    "Uri",
    "Via",
    "build_multipart",
    "canonical_name",
    "encode_feature_tag",
    "feature_tag_values",
    "feature_tags",
    "parse_message",
    "parse_multipart",
    "parse_uri",
    "validate_message",
    "validate_request",
    "with_feature_tag",
]

# -- transactions and dialogs (RFC 3261 §12, §17; RFC 6026) ----------------------------------
from simpleim.sip.dialog import (  # noqa: E402
    Dialog,
    DialogId,
    DialogSet,
    DialogState,
    DialogTable,
)
from simpleim.sip.dialog_2xx import AckWait, AckWaitResult  # noqa: E402
from simpleim.sip.transaction import TxInput, TxKind, TxState  # noqa: E402
from simpleim.sip.transaction_build import (  # noqa: E402
    ack_for_non2xx,
    cancel_request,
    response_destination,
)
from simpleim.sip.transaction_layer import (  # noqa: E402
    AckReceived,
    CancelReceived,
    ClientTransaction,
    Outgoing,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    ServerTransaction,
    Transaction,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailure,
)
from simpleim.sip.transaction_layer import Event as TransactionEvent  # noqa: E402

__all__ += [
    "AckReceived",
    "AckWait",
    "AckWaitResult",
    "CancelReceived",
    "ClientTransaction",
    "Dialog",
    "DialogId",
    "DialogSet",
    "DialogState",
    "DialogTable",
    "Outgoing",
    "RequestReceived",
    "RequestRejected",
    "ResponseReceived",
    "ServerTransaction",
    "Transaction",
    "TransactionEvent",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportFailure",
    "TxInput",
    "TxKind",
    "TxState",
    "ack_for_non2xx",
    "cancel_request",
    "response_destination",
]
