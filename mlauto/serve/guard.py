"""Who may call which route: one rule, from ``serve.host``, ``serve.public_routes`` and ``serve.protect_predict``.

- ``/health`` is always open (load balancers and Docker's HEALTHCHECK call it).
- ``/admin/*`` always needs the admin token.
- When ``serve.host`` is not a loopback address, every other route needs the token too, unless
  ``serve.public_routes`` lists it.
- On a loopback host only ``/predict`` and ``/feedback`` can need it: when ``serve.protect_predict``.
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any, Iterable

OPEN = ("/health",)
# Every route of the app (what serve.public_routes may list).
ROUTES = ("/predict", "/feedback", "/model", "/drift", "/events", "/report", "/metrics", "/docs", "/openapi.json",
          "/health")
PREDICT_ROUTES = ("/predict", "/feedback")


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_hint(token: str | None) -> str:
    """What may be logged of a token: its first 4 characters."""
    return f"{token[:4]}..." if token else "(none)"


class Guard:
    def __init__(self, token: str | None, host: str, public_routes: Iterable[str], protect_predict: bool) -> None:
        self.token = token
        self.loopback = is_loopback(host)
        self.public = {"/" + r.strip("/") for r in public_routes}
        self.protect_predict = protect_predict

    def needs_token(self, route: str) -> bool:
        """``route``: the route template without the app's prefix (``/predict``, ``/admin/retrain``)."""
        if route in OPEN:
            return False
        if route.startswith("/admin"):
            return True
        if route in self.public:
            return False
        if not self.loopback:
            return True
        return self.protect_predict and route in PREDICT_ROUTES

    def refuse(self, headers: Any, route: str) -> Any:
        """None when the call may go on, else a JSONResponse: 401 (no token sent) or 403 (wrong token, or
        none configured)."""
        if not self.needs_token(route):
            return None
        from fastapi.responses import JSONResponse

        if not self.token:
            return JSONResponse({"detail": "no admin token is configured (serve.admin_token)"}, status_code=403)
        given = headers.get("authorization", "")
        if not given.startswith("Bearer "):
            return JSONResponse({"detail": f"{route} needs Authorization: Bearer <admin token>"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(given[7:].encode(), self.token.encode()):
            return JSONResponse({"detail": "wrong admin token"}, status_code=403)
        return None
