"""Output formats: the Pixelcut names plus the ones the other contracts ask for.

One table; the gateway validates with it, the encoder builds streams from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from videobg.errors import InvalidInput


@dataclass(frozen=True)
class OutputFormat:
    name: str
    container: str | None  # PyAV/FFmpeg muxer name; None for png_sequence (zip written by hand)
    extension: str
    video_codec: str
    pix_fmt: str  # opaque output
    alpha_pix_fmt: str | None  # None: the format cannot carry alpha
    audio_codec: str | None  # codec used when audio must be re-encoded; None: the format drops audio
    mime: str


FORMATS: dict[str, OutputFormat] = {
    f.name: f
    for f in (
        OutputFormat("mp4_h264", "mp4", ".mp4", "libx264", "yuv420p", None, "aac", "video/mp4"),
        OutputFormat("mp4_h265", "mp4", ".mp4", "libx265", "yuv420p", None, "aac", "video/mp4"),
        OutputFormat(
            "webm_vp9", "webm", ".webm", "libvpx-vp9", "yuv420p", "yuva420p", "libopus", "video/webm"
        ),
        OutputFormat("mov_h265", "mov", ".mov", "libx265", "yuv420p", None, "aac", "video/quicktime"),
        OutputFormat(
            "mov_proresks",
            "mov",
            ".mov",
            "prores_ks",
            "yuv422p10le",
            "yuva444p10le",
            "aac",
            "video/quicktime",
        ),
        OutputFormat("mkv_h264", "matroska", ".mkv", "libx264", "yuv420p", None, "aac", "video/x-matroska"),
        OutputFormat("mkv_h265", "matroska", ".mkv", "libx265", "yuv420p", None, "aac", "video/x-matroska"),
        OutputFormat(
            "mkv_vp9", "matroska", ".mkv", "libvpx-vp9", "yuv420p", "yuva420p", "libopus", "video/x-matroska"
        ),
        OutputFormat("gif", "gif", ".gif", "gif", "pal8", "pal8", None, "image/gif"),
        # bgra: libwebp converts to YUV itself, with the BT.601 matrix every WebP decoder assumes
        OutputFormat("webp", "webp", ".webp", "libwebp_anim", "bgra", "bgra", None, "image/webp"),
        OutputFormat("png_sequence", None, ".zip", "png", "rgb24", "rgba", None, "application/zip"),
    )
}

DEFAULT_FORMAT = "mp4_h264"

# Short names used by removebgvideo-style contracts -> our names.
ALIASES: dict[str, str] = {"mp4": "mp4_h264", "webm": "webm_vp9", "mov": "mov_proresks", "mkv": "mkv_h264"}


def get_format(name: str, *, transparent: bool = False) -> OutputFormat:
    key = ALIASES.get(name, name)
    fmt = FORMATS.get(key)
    if fmt is None:
        raise InvalidInput(f"Unknown output_format {name!r}; expected one of {', '.join(FORMATS)}")
    if transparent and fmt.alpha_pix_fmt is None:
        alpha = [f.name for f in FORMATS.values() if f.alpha_pix_fmt]
        raise InvalidInput(
            f"A transparent background needs an output format that carries alpha ({', '.join(alpha)}); "
            f"{fmt.name} does not"
        )
    return fmt
