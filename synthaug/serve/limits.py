"""The limits every request meets: body size and time (an ASGI middleware), admission (a non-blocking
semaphore per kind of work), and uploaded images checked from their bytes before they are decoded."""

from __future__ import annotations

import asyncio
import io
import json
import warnings
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from PIL import Image, ImageOps

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# magic bytes -> the Pillow format allowed to decode them (nothing else is tried)
SIGNATURES: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
]
SUPPORTED = "PNG, JPEG, GIF, BMP, TIFF or WebP"


class RequestRefused(Exception):
    """A request the server will not serve: an HTTP status and one line saying what and how to fix it."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class LimitsMiddleware:
    """413 for request bodies over `max_body` bytes (announced or streamed), 504 past `timeout_s`.

    The body is read here, up to the limit, before the framework parses anything: a huge upload is refused
    after max_body bytes whatever its Content-Length says, and a slow one runs into the same timeout.

    A refused body is still read to its end and thrown away, one chunk at a time, up to `discard_factor` x max_body
    in all, before the 413 goes out. Most clients (urllib, requests; any without `Expect: 100-continue`) send the
    whole body before they read the answer, and a server that answers and closes with their bytes unread resets
    the connection: they would see "connection reset" instead of the 413. Refused at once, without reading: a body
    announced beyond that bound (reading it is not worth it; the client may see the reset), and one whose client
    sent `Expect: 100-continue` (it waits for an answer before it sends the body, as curl does).
    """

    def __init__(self, app: ASGIApp, max_body: int, timeout_s: float, discard_factor: int = 4) -> None:
        self.app, self.max_body, self.timeout_s = app, max_body, timeout_s
        self.discard_bytes = discard_factor * max_body  # the most a refused request's body is read for

    def _too_large(self, size: str) -> str:
        return (f"request body is {size}, more than the {self.max_body / 2**20:.3g} MB limit; send a smaller image "
                "(or start the server with a larger --max-upload-mb)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        declared_size = int(declared) if declared is not None and declared.isdigit() else None
        if declared_size is not None and declared_size > self.max_body and (
                declared_size > self.discard_bytes or headers.get(b"expect", b"").lower() == b"100-continue"):
            await _send_json(send, 413, self._too_large(f"{declared_size / 2**20:.3g} MB"))
            return
        started = False
        refusal: list[str] = []  # the 413's text once the body is known to be too large (a timeout then still says so)

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self._handle(scope, receive, tracking_send, declared_size, refusal), self.timeout_s)
        except asyncio.TimeoutError:
            if not started and refusal:
                await _send_json(send, 413, refusal[0])
            elif not started:
                await _send_json(send, 504, f"request took longer than {self.timeout_s:g} s; ask for fewer images, "
                                            "retry later, or start the server with a larger --request-timeout")

    async def _handle(self, scope: Scope, receive: Receive, send: Send, declared_size: int | None,
                      refusal: list[str]) -> None:
        if declared_size is not None and declared_size > self.max_body:
            refusal.append(self._too_large(f"{declared_size / 2**20:.3g} MB"))
            if await self._discard(receive, 0):
                await _send_json(send, 413, refusal[0])
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk, more = message.get("body", b""), message.get("more_body", False)
            size += len(chunk)
            if size > self.max_body:
                refusal.append(self._too_large("more than that"))
                chunks.clear()  # from here on the body is only counted, never kept
                if not more or await self._discard(receive, size):
                    await _send_json(send, 413, refusal[0])
                return
            chunks.append(chunk)
            if not more:
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:  # what Starlette sees after the body: wait for the client to go away
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _discard(self, receive: Receive, received: int) -> bool:
        """Read the rest of a refused body and drop each chunk as it comes, until its end or discard_bytes in all
        (the server reads no further than that either way). False when the client went away."""
        while received <= self.discard_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return False
            received += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return True


class Gate:
    """A semaphore that never queues: `enter()` refuses with 503 + Retry-After when `limit` are inside."""

    def __init__(self, limit: int, what: str, retry_after_s: int) -> None:
        self.limit, self.what, self.retry_after_s = limit, what, retry_after_s
        self.inside = 0

    def __enter__(self) -> "Gate":
        if self.inside >= self.limit:
            raise RequestRefused(503, f"busy: {self.limit} {self.what} requests already running or queued; retry in "
                                      f"{self.retry_after_s} s", {"Retry-After": str(self.retry_after_s)})
        self.inside += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.inside -= 1


def sniff_format(data: bytes) -> str | None:
    """The image format the bytes themselves announce (never the file name)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in SIGNATURES if data.startswith(magic)), None)


@dataclass
class DecodedImage:
    image: Any  # a loaded PIL image (first frame, EXIF orientation applied)
    format: str  # the sniffed format
    size: tuple[int, int]  # width, height as uploaded


def decode_image(data: bytes, filename: str, max_pixels: int) -> DecodedImage:
    """Sniff, check the pixel count from the header, then decode; RequestRefused (415 / 400) says why not."""
    name = filename or "upload"
    fmt = sniff_format(data)
    if fmt is None:
        raise RequestRefused(415, f"{name}: not an image its bytes say we can read (expected {SUPPORTED}, "
                                  f"whatever the file name says); upload one of those")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # Pillow's own bomb check: an error here
            img = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = img.size
            if width * height > max_pixels:  # checked from the header, before a single pixel is decoded
                raise RequestRefused(400, f"{name}: {width}x{height} = {width * height / 1e6:.1f} megapixels, more than "
                                          f"the {max_pixels / 1e6:.1f} MP limit (a decompression bomb?); upload a smaller image")
            img.load()  # decode now: a truncated or corrupt file fails here
            img = ImageOps.exif_transpose(img)
    except RequestRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RequestRefused(400, f"{name}: refused as a decompression bomb ({exc}); upload a smaller image") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # Pillow's ways of saying "broken"
        raise RequestRefused(400, f"{name}: broken {fmt} file ({exc}); upload an intact image") from exc
    return DecodedImage(img, fmt, (width, height))
