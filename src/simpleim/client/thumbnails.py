"""JPEG thumbnails for ``a=file-icon`` (RFC 5547 §6, RCS ftthumb) made with Pillow."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

__all__ = ["DEFAULT_MAX_PIXELS", "make_thumbnail", "IMAGE_TYPES", "guess_image_type"]

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


#: Largest image (in pixels, after JPEG draft scaling) we decode for a thumbnail: ~72 MB of
#: RGB at most.  Bigger images are sent without a thumbnail (the icon is optional, RFC 5547 §6).
DEFAULT_MAX_PIXELS = 24_000_000


def make_thumbnail(path: str | Path, *, max_side: int = 128, max_bytes: int = 8192,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes | None:
    """A small JPEG thumbnail of an image file, or None when Pillow cannot read it or the
    image is larger than ``max_pixels`` (decompression bombs: a 400 Mpx PNG is a few KB on
    disk).  Only the header is read before that check; JPEGs are decoded at a reduced scale
    (``draft``), so large photos still get a thumbnail cheaply."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - Pillow is a declared dependency
        return None
    try:
        with warnings.catch_warnings():
            # Pillow warns (89 Mpx) or raises (178 Mpx) at open(); our own bound is lower
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img_cm = Image.open(path)
        with img_cm as img:
            if img.format == "JPEG":
                img.draft("RGB", (max_side * 2, max_side * 2))
            width, height = img.size
            if width * height > max_pixels:
                return None
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
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
