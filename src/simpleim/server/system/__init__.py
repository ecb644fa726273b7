"""System Messages of the IM server (OMA SIMPLE IM §5.4) and their answer deadline Ts1
(§15), which the Participating Function checks (§6.1.1.1 step 2)."""

from __future__ import annotations

from simpleim.server.system.function import (
    SYSTEM_MESSAGE_TAG,
    SYSTEM_USER,
    SystemConfig,
    SystemMessageFunction,
    SystemSender,
)

__all__ = ["SYSTEM_MESSAGE_TAG", "SYSTEM_USER", "SystemConfig", "SystemMessageFunction",
           "SystemSender"]
