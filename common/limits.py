"""How large a request may be: one set of numbers for nginx (the front), gunicorn and the app.

Kept free of Flask and torch so that the front's launcher, which renders
nginx's configuration from these, starts in a fraction of a second (a restart
of ``front`` holds connections in the backlog for as long).
"""

from __future__ import annotations

# The app-wide body limit (Flask's MAX_CONTENT_LENGTH); upload and batch routes raise it per request.
JSON_BODY_BYTES = 16 * 1024
BATCH_BODY_BYTES = 256 * 1024
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# A request line (and each header line) must fit one of nginx's 8 KiB header buffers with its CRLF;
# gunicorn behind it is given the same limit (8190 is also gunicorn's largest).
HEADER_LINE_BYTES = 8 * 1024 - 2


def upload_body_bytes(max_image_bytes: int) -> int:
    """The largest multipart body carrying an image of ``max_image_bytes`` (the file plus its form framing)."""
    return max_image_bytes + MULTIPART_OVERHEAD_BYTES


def largest_body_bytes(max_image_bytes: int) -> int:
    """The largest body any route accepts: what the front lets through at most."""
    return max(JSON_BODY_BYTES, BATCH_BODY_BYTES, upload_body_bytes(max_image_bytes))
