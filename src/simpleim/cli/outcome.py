"""Exit codes and failure reasons in words shared by the client commands (docs/cli.md)."""

from __future__ import annotations

__all__ = ["EXIT_CODES", "exit_code_for", "describe_failure"]

#: Exit codes a script can rely on (docs/cli.md).
EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "other failure",
    2: "usage or configuration error",
    3: "registration / authentication failed",
    4: "unreachable or no answer (408, 503, network)",
    5: "not found (404, 604)",
    6: "temporarily unavailable (480)",
    7: "declined / busy / not acceptable (603, 486, 488, 600, 606)",
    8: "transfer failed (MSRP error, hash mismatch)",
    9: "forbidden (403)",
}


def exit_code_for(status: int) -> int:
    if status in (404, 604):
        return 5
    if status == 480:
        return 6
    if status in (603, 486, 488, 600, 606, 487):
        return 7
    if status == 403:
        return 9
    if status in (401, 407):
        return 3
    if status in (0,):
        return 8
    if status in (408, 503, 504) or status >= 500:
        return 4
    return 1


#: Final statuses of a request to a user, in words (the status is kept in the line too).
_FAILURE_WORDS: dict[int, str] = {
    404: "{to} does not exist on the server",
    604: "{to} does not exist anywhere",
    480: "{to} is not online; {what} was not stored: try again when they are registered",
    408: "no answer from {to}",
    486: "{to} is busy",
    603: "{to} declined",
    606: "{to} cannot take this kind of session",
    488: "{to} cannot take this kind of session",
    403: "refused by the server",
}


def describe_failure(status: int, reason: str, to: str, what: str = "the message") -> str:
    """``bob is not online; the message was not stored ... (480 Temporarily
    Unavailable)``: the SIP outcome of a request in words."""
    words = _FAILURE_WORDS.get(status)
    wire = f"{status} {reason}".strip() if status else reason
    if words is None:
        return f"failed: {wire}"
    return f"{words.format(to=to, what=what)} ({wire})"
