"""JPEG thumbnails for ``a=file-icon`` (RFC 5547 §6, RCS ftthumb) made with Pillow."""

from __future__ import annotations

import io
from pathlib import Path

__all__ = ["make_thumbnail", "IMAGE_TYPES", "guess_image_type"]

#: IR.79 §2.6: JPEG mandatory, GIF/BMP/PNG optional.
IMAGE_TYPES = ("image/jpeg", "image/gif", "image/png", "image/bmp")
_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"\x89PNG\r\n\x1a\n", "image/png"), (b"BM", "image/bmp"))


def guess_image_type(path: str | Path) -> str | None:
    """The image type from the file's magic bytes (not its name)."""
    with open(path, "rb") as f:
        head = f.read(16)
    for magic, ctype in _MAGIC:
        if head.startswith(magic):
            return ctype
    return None


def make_thumbnail(path: str | Path, *, max_side: int = 128, max_bytes: int = 8192) -> bytes | None:
    """A small JPEG thumbnail of an image file, or None if Pillow cannot read it."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - Pillow is a declared dependency
        return None
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            rgb.thumbnail((max_side, max_side))
            quality = 80
            while True:
                out = io.BytesIO()
                rgb.save(out, "JPEG", quality=quality)
                data = out.getvalue()
                if len(data) <= max_bytes or quality <= 20:
                    return data
                quality -= 20
    except (OSError, UnidentifiedImageError, ValueError):
        return None
