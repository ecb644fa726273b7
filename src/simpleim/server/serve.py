"""Running the simpleim server: TLS context, store, listeners (SIP, metrics, XCAP), ready line,
signals and exit code.  :func:`run_server` is the CLI entry, :func:`serve` the coroutine tests
and embedders use; :class:`~simpleim.server.app.ImServer` is what they run.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import ssl
import sys
from collections.abc import Callable

from simpleim.errors import ConfigError, StorageError
from simpleim.server.app import ImServer
from simpleim.server.config import ServerConfig, parse_host_port
from simpleim.server.http import OpsHttpServer
from simpleim.server.logging import configure_logging
from simpleim.server.metrics import ServerMetrics
from simpleim.server.xdm.http import XCAP_ROOT, XcapServer
from simpleim.transport import tls

__all__ = ["make_server_ssl", "run_server", "serve"]

log = logging.getLogger("simpleim.server")



def make_server_ssl(config: ServerConfig) -> ssl.SSLContext | None:
    """The TLS server context for tls: listeners (RFC 3261 §26.2: TLS for sips)."""
    if not (config.tls_cert and config.tls_key):
        return None
    return tls.server_context(config.tls_cert, config.tls_key)


async def serve(
    config: ServerConfig,
    *,
    stop: asyncio.Event | None = None,
    ready: Callable[[str], None] | None = None,
) -> int:
    """Run the server until ``stop`` is set (or SIGINT/SIGTERM); returns an exit code."""
    from simpleim.store import open_store

    try:
        ssl_server = make_server_ssl(config)
        store = await open_store(config.db_url)
    except (ConfigError, StorageError) as exc:
        print(f"simpleim server: {exc}", file=sys.stderr)
        return 1
    try:
        metrics = ServerMetrics() if config.metrics_listen else None
        server = ImServer(config, store, ssl_server=ssl_server, metrics=metrics)
        ops: OpsHttpServer | None = None
        xcap: XcapServer | None = None
        try:
            bound = await server.start()
            if metrics is not None and config.metrics_listen:
                ops = OpsHttpServer(metrics.registry, server.health)
                host, port = parse_host_port(config.metrics_listen, 9090)
                ops_addr = await ops.start(host, port)
            if config.xcap_listen and server.roles is not None:
                xcap = XcapServer(server.roles.xdm, config.domain, server.auth,
                                  max_document=config.xcap_max_document,
                                  guard=server.auth_guard)
                host, port = parse_host_port(config.xcap_listen, 0)
                xcap_addr = await xcap.start(host, port,
                                             ssl_server if config.xcap_tls else None)
        except OSError as exc:
            hint = (" (another server on that port? choose one with --listen HOST:PORT)"
                    if exc.errno == errno.EADDRINUSE else "")
            print(f"simpleim server: cannot listen on {exc.strerror or exc}{hint}",
                  file=sys.stderr)
            for http in (ops, xcap):
                if http is not None:
                    await http.close()
            await server.close()
            return 1
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not in the main thread: the caller sets ``stop``
        if config.auth and not await store.list_users(config.domain):
            # Every REGISTER would get 401 for ever: say why once, at start.
            log.warning("no user in domain %s: add one with 'simpleim user add NAME "
                        "--domain %s --db %s'", config.domain, config.domain, config.db_url)
        line = server.ready_line(bound)
        if ops is not None:
            line += f" metrics=http://{_http_host(ops_addr[0])}:{ops_addr[1]}/metrics"
        if xcap is not None:
            scheme = "https" if config.xcap_tls else "http"
            line += f" xcap={scheme}://{_http_host(xcap_addr[0])}:{xcap_addr[1]}{XCAP_ROOT}"
        if ready is not None:
            ready(line)
        else:
            print(line, flush=True)
        await stop.wait()
        log.info("shutting down")
        for http in (ops, xcap):
            if http is not None:
                await http.close()
        await server.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
    finally:
        await store.close()
    return 0


def _http_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def run_server(config: ServerConfig) -> int:
    """CLI entry: configure logging, use uvloop when installed, run :func:`serve`."""
    try:
        configure_logging(config.log_level, config.log_format, config.log_file)
    except ConfigError as exc:
        print(f"simpleim server: {exc}", file=sys.stderr)
        return 1
    # Start-up objects are kept out of the collector's way (frozen).  Under load most
    # tracked objects belong to live transactions and are freed by reference counting:
    # every collection of a generation visits them all, so a generation's size is a pause
    # (Completed non-INVITE transactions, 64*T1 = 32 s each, RFC 3261 §17.2.2, are kept as
    # untracked records by the transaction layer).
    # Young collections every 10,000 net allocations and the middle generation every 10 of
    # them keep each pause to tens of milliseconds (50,000 x 20 made 0.4 s pauses at 2500
    # MESSAGE/s: longer than T1, i.e. retransmission storms); full collections stay as rare
    # as before (every 10,000 x 10 x 1,000 net allocations, and the 25 % rule).
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 1_000)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(serve(config))
