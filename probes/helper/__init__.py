"""The control helper: an oohelperd-shaped aiohttp app measuring a URL from the uncensored side.

settings (HelperSettings), steps (DNS/TCP/TLS, cached), connections (kept between two GETs),
page and exchange (the fetch), answer (assembly), service (refusals, one request), app (HTTP,
token, limits). The protocol: probes.control_protocol.
"""

from probes.control_protocol import ParsedControlRequest, RequestRefused, parse_control_request
from probes.helper.app import SERVICE_KEY, build_app
from probes.helper.cache import TTLCache
from probes.helper.service import ControlService
from probes.helper.settings import HelperSettings

__all__ = [
    "SERVICE_KEY",
    "ControlService",
    "HelperSettings",
    "ParsedControlRequest",
    "RequestRefused",
    "TTLCache",
    "build_app",
    "parse_control_request",
]
