"""`owsd serve-cloud`: a timm classifier behind the Open Inference Protocol, for demos and tests.

The socket is bound before uvicorn starts, so a busy port is one clear error and `--port 0` picks a free one
(the ready line names it)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket

import uvicorn

from owsd.components.timm_models import HUB
from owsd.errors import ConfigError
from owsd.interrupts import Interrupted
from owsd.ranges import Count, Port, option
from owsd.serving.server import DEFAULT_MAX_BODY_MB, ServedModel, create_app

log = logging.getLogger(__name__)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="owsd serve-cloud", description="Serve a timm classifier over the v2 REST protocol."
    )
    parser.add_argument("--model", required=True, help="timm model name, e.g. tf_efficientnet_lite2")
    parser.add_argument("--weights", default=HUB, help="pretrained, pypi, random or a state_dict file (as LocalCloud)")
    parser.add_argument("--name", help="model name in the URLs (default: --model)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; loopback unless you mean to expose it")
    parser.add_argument("--port", type=option(Port), default=8080, help="0 picks a free port")
    parser.add_argument("--max_batch", type=option(Count), default=64, help="largest batch one request may carry")
    parser.add_argument(
        "--max_body_mb",
        type=option(Count),
        default=DEFAULT_MAX_BODY_MB,
        help="largest request body, in MiB (larger: 413)",
    )
    args = parser.parse_args(argv[1:])
    sock = _bind(args.host, args.port)  # first: a busy port fails before the model loads
    model = ServedModel.load(args.model, args.weights, args.name, args.max_batch, args.max_body_mb)
    host, port = sock.getsockname()[:2]
    if not ipaddress.ip_address(host).is_loopback:
        log.warning("serve-cloud: %s is reachable from other machines, and this server has no authentication", host)
    server = uvicorn.Server(uvicorn.Config(create_app(model), log_level="warning", timeout_graceful_shutdown=5))
    log.info("serving %s on http://%s:%d", model.name, host if ":" not in host else f"[{host}]", port)
    try:
        server.run(sockets=[sock])  # on Ctrl-C or SIGTERM uvicorn finishes the requests in flight, then re-raises it
    except (KeyboardInterrupt, Interrupted):  # stopping is how a server ends: exit 0
        pass
    log.info("stopped serving %s", model.name)


def _bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except (OSError, OverflowError) as error:
        raise ConfigError(f"cannot listen on {host}:{port}: {error}") from None
    sock.listen(128)
    return sock
