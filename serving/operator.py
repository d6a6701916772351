"""Who may change what production serves: the operator's token, checked in constant time.

The model repository's ``load`` and ``unload`` (the inference protocol's repository extension)
answer only when DETECTOR_ADMIN_TOKEN is set and the caller presents it as a bearer token.
"""

from __future__ import annotations

import hmac

from common.errors import Forbidden

HOW_TO_ENABLE = ("set DETECTOR_ADMIN_TOKEN in the service's environment and send it as "
                 "'Authorization: Bearer <token>' (gRPC: 'authorization' metadata)")


def check_operator(token: str, authorization: str | None) -> None:
    """Raise Forbidden unless ``authorization`` (an ``Authorization`` header's value) is ``Bearer <token>``."""
    if not token:
        raise Forbidden(f"loading and unloading models is disabled on this service: {HOW_TO_ENABLE}")
    scheme, _, presented = (authorization or "").strip().partition(" ")
    # compare_digest takes as long for any wrong token of a given length: no timing hints.
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise Forbidden(f"this call needs the operator's token: {HOW_TO_ENABLE}")
