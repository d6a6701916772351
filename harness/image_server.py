"""The one local HTTP server on 127.0.0.1 that tools and tests serve images from.

``/images/<name>`` serves files from a folder; ``/case/<name>`` serves the
hostile and odd cases the service must answer cleanly (slow, endless, huge,
redirecting to private addresses, truncated, decompression bombs, odd modes),
made from a photo of that folder where it has one. ``serve_folder`` runs it for
a ``with`` block.
"""

from __future__ import annotations

import contextlib
import functools
import io
import mimetypes
import struct
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image


def _png_bytes(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **params)
    return buffer.getvalue()


def _jpeg_bytes(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **params)
    return buffer.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims 10^10 pixels: decoding it would need ~30 GB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@functools.cache
def blank_png(mode: str, side: int = 7000) -> bytes:
    """A small PNG of side x side blank pixels that is large decoded.

    ``I;16``: 95 KB, 98 MB of 16-bit gray, ~440 MB at the peak of conversion;
    ``RGBA``: 196 MB of pixels, ~735 MB at the peak of compositing onto white.
    """
    buffer = io.BytesIO()
    shape, dtype = {"I;16": ((side, side), np.uint16), "RGBA": ((side, side, 4), np.uint8)}[mode]
    Image.fromarray(np.zeros(shape, dtype=dtype)).save(buffer, format="PNG")
    return buffer.getvalue()


def many_page_tiff(pages: int) -> bytes:
    """A little-endian TIFF of ``pages`` 1x1 gray pages, each IFD pointing at the next (PIL takes minutes to save one)."""
    tags = 8
    ifd_size = 2 + tags * 12 + 4
    header = b"II*\x00" + struct.pack("<I", 8)
    body = bytearray()
    for page in range(pages):
        offset = 8 + page * (ifd_size + 2)
        pixel_offset = offset + ifd_size
        next_ifd = offset + ifd_size + 2 if page + 1 < pages else 0
        entries = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
                   (273, 4, 1, pixel_offset), (278, 3, 1, 1), (279, 4, 1, 1)]
        body += struct.pack("<H", tags)
        for tag, kind, count, value in entries:
            body += struct.pack("<HHII", tag, kind, count, value)
        body += struct.pack("<I", next_ifd) + b"\x80\x00"
    return header + bytes(body)


def make_cases(photo: Path) -> dict[str, tuple[bytes, str]]:
    """Bodies (and content types) of the static cases, built from one real photo."""
    rgb = Image.open(photo).convert("RGB")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(200)
    gray16 = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"; the pixels are stored turned the other way
    frames = [rgb, rgb.rotate(180)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    full_jpeg = _jpeg_bytes(rgb)
    return {
        "photo.jpg": (full_jpeg, "image/jpeg"),
        "wrong-type.jpg": (full_jpeg, "text/html"),
        "rgba.png": (_png_bytes(rgba), "image/png"),
        "gray16.png": (_png_bytes(gray16), "image/png"),
        "cmyk.jpg": (_jpeg_bytes(rgb.convert("CMYK")), "image/jpeg"),
        "exif-rotated.jpg": (_jpeg_bytes(rgb.rotate(90, expand=True), exif=exif), "image/jpeg"),
        "animated.gif": (gif.getvalue(), "image/gif"),
        "palette.png": (_png_bytes(rgb.convert("P")), "image/png"),
        "truncated.jpg": (full_jpeg[: len(full_jpeg) // 2], "image/jpeg"),
        "not-an-image.txt": (b"hello, this is text and not a picture\n" * 10, "text/plain"),
        "empty.jpg": (b"", "image/jpeg"),
        "bomb.png": (bomb_png(), "image/png"),
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up (the service's fetch, its process killed) is no error of the server's."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ImageServer:
    def __init__(self, images: Path, photo: str = "darknet_dog.jpg"):
        self.images = Path(images)
        self.cases = make_cases(self.images / photo) if (self.images / photo).is_file() else {}
        self.requests: list[str] = []
        # Per server: stopping one server must not end another's slow or endless responses.
        self.stopping = threading.Event()
        handler = self._handler()
        self._server = _Server(("127.0.0.1", 0), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _redirect(self, location: str) -> None:
                self._send(302, b"", "text/plain", {"Location": location})

            def do_GET(self) -> None:  # noqa: N802
                outer.requests.append(self.path)
                path = self.path.split("?")[0]
                try:
                    self._route(path)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _route(self, path: str) -> None:
                if path.startswith("/images/"):
                    file = outer.images / path.removeprefix("/images/")
                    if file.is_file() and file.parent == outer.images:
                        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                        self._send(200, file.read_bytes(), content_type)
                    else:
                        self._send(404, b"not found", "text/plain")
                    return
                name = path.removeprefix("/case/")
                if name in outer.cases:
                    body, content_type = outer.cases[name]
                    self._send(200, body, content_type)
                elif name in ("status-404", "status-403", "status-410", "status-304"):
                    status = int(name.removeprefix("status-"))
                    self._send(status, b"" if status == 304 else b"no", "text/plain")
                elif name == "status-500":
                    self._send(500, b"broken", "text/plain")
                elif name == "redirect-ok":
                    self._redirect("/case/photo.jpg")
                elif name == "redirect-metadata":
                    self._redirect("http://169.254.169.254/latest/meta-data/")
                elif name == "redirect-private":
                    self._redirect("http://10.1.2.3/image.jpg")
                elif name == "redirect-loop":
                    self._redirect("/case/redirect-loop")
                elif name == "redirect-ftp":
                    self._redirect("ftp://127.0.0.1/image.jpg")
                elif name == "huge-declared":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(30 * 1024 * 1024))
                    self.end_headers()
                    self.wfile.write(b"\xff" * 1024)
                elif name == "endless":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.end_headers()
                    self.close_connection = True
                    chunk = b"\0" * 65536
                    while not outer.stopping.is_set():
                        self.wfile.write(chunk)
                elif name == "slow-headers":
                    outer.stopping.wait(30)
                    self._send(200, outer.cases["photo.jpg"][0], "image/jpeg")
                elif name == "drip-headers":
                    # Each byte well inside any read timeout; the headers never end.
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nX-Drip: ")
                    while not outer.stopping.wait(0.2):
                        try:
                            self.wfile.write(b"a")
                            self.wfile.flush()
                        except OSError:
                            return
                elif name == "late-photo":
                    # A well-behaved server that takes its time: the whole photo after 1.5 s.
                    if not outer.stopping.wait(1.5):
                        self._send(200, outer.cases["photo.jpg"][0], "image/jpeg")
                elif name == "sixteen-bit-7000.png":
                    self._send(200, blank_png("I;16"), "image/png")
                elif name == "rgba-7000.png":
                    self._send(200, blank_png("RGBA"), "image/png")
                elif name == "slow-body":
                    body = outer.cases["photo.jpg"][0]
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    for offset in range(0, len(body), 256):
                        if outer.stopping.wait(0.5):
                            return
                        self.wfile.write(body[offset : offset + 256])
                        self.wfile.flush()
                else:
                    self._send(404, b"no such case", "text/plain")

        return Handler


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder``'s files on 127.0.0.1 (a free port) for the block; yields their base URL."""
    server = ImageServer(folder)
    server.start()
    try:
        yield server.url("/images")
    finally:
        server.stop()
