"""What each case expects, quoted from the vendors' published pages that the service answers to.

Every quote is a verbatim piece of one seed page (whitespace aside): 000 studio-background, 001 and 002
removebgvideo guides, 003 Pixelcut's OpenAPI, 004 removebgvideo's Process Video reference. A case prints its
quote as "expected", then what it checks in our words. `tests/unit/test_conformance_kit.py` checks that
every quote is still in its seed file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quote:
    seed: str  # the seed page's number, "000" .. "004"
    text: str

    def __str__(self) -> str:
        return f'[{self.seed}] "{self.text}"'


def q(seed: str, text: str) -> Quote:
    return Quote(seed, text)


# --- 000: studio-background ----------------------------------------------------------------------------------
STUDIO_FIELDS = q("000", "Field name is `videoUrl` (camelCase).")
STUDIO_ACCEPTED = q(
    "000",
    '"status": "accepted", "message": "Job queued for processing", "job": { "id": "550e8400-...", '
    '"status": "queued", "service": "studio-background" }',
)
STUDIO_POLL = q("000", "Standard async — poll GET /v2/jobs/{job_id}.")
STUDIO_RESULT = q("000", "when status is completed, the result contains the output video URL.")
STUDIO_OUTPUT = q("000", "output is single MP4 (H.264 video, AAC audio).")
STUDIO_SIZE = q("000", "output video matches input resolution (and original audio is preserved).")
STUDIO_TRIM = q("000", "Optional start and end (seconds or hh:mm:ss) trim the source first")
STUDIO_BILLED = q("000", "Billed per second of source video (trimmed segment if start/end are provided).")
STUDIO_PRICE = q("000", "Background Remove/Replace | second | $0.06/second")
STUDIO_HEX = q("000", "Base is white (remove), a solid hex color (e.g. #1E90FF), or a replacement image.")
STUDIO_WHITE = q("000", "Omit both for remove (subject over white).")
STUDIO_ASSET = q("000", "Source video (URL or asset ID)")
STUDIO_EITHER = q(
    "000",
    "Background spec is `back_ground` (with underscore) for hex colors, OR `imageUrl` for replacement image URL.",
)

# --- 001 / 002: removebgvideo guides -------------------------------------------------------------------------
RBV_CORE = q("001", '"output_format": "webm", "bg_type": "transparent",')
RBV_MODEL = q("001", "model | string | yes | original | light | pro | human")
RBV_BG_TYPE = q("001", "bg_type | string | yes | transparent | color | image")
RBV_FORMAT = q("001", "output_format | string | yes | webm | mov | mp4 | gif | webp | png_sequence")
RBV_CREDIT_PATHS = q("001", "Verify success, failure, timeout, retry, and insufficient-credit paths")
UPLOAD_URL = q("002", "Upload your background image and get a URL.")
RBV_IMAGE_JOB = q("002", "Create job with bg_type=image and bg_image_url.")
RBV_START_POLL = q("002", "Start and poll status until completed.")
RBV_FORMAT_POLICY = q(
    "002", "Use explicit output format policy for transparent vs non-transparent workflows."
)

# --- 003: Pixelcut ------------------------------------------------------------------------------------------
PC_ACCEPTED = q("003", "description: Accepted - processing has started")
PC_LOCATION = q("003", "description: Endpoint to poll for job status")
PC_DEFAULT_COLOR = q("003", "default: '#000000'")
PC_DEFAULT_FORMAT = q("003", "Defaults to `mp4_h264` if not specified.")
PC_MP4 = q("003", "mp4_h264: MP4 with H.264 codec")
PC_MP4_H265 = q("003", "mp4_h265: MP4 with H.265/HEVC codec")
PC_MOV_H265 = q("003", "mov_h265: QuickTime with H.265 codec")
PC_PRORES = q("003", "mov_proresks: QuickTime with ProRes 4444 codec (supports transparency)")
PC_MKV_H264 = q("003", "mkv_h264: Matroska with H.264 codec")
PC_MKV_H265 = q("003", "mkv_h265: Matroska with H.265 codec")
PC_MKV_VP9 = q("003", "mkv_vp9: Matroska with VP9 codec")
PC_GIF = q("003", "gif: Animated GIF (supports transparency)")
PC_CODECS = q("003", "Supported codecs: H.264, H.265/HEVC, VP8, VP9, AV1, ProRes")
PC_WEBM_ALPHA = q("003", "webm_vp9: WebM with VP9 codec (supports transparency)")
PC_HEX = q("003", 'Use hex code (e.g., "#000000", "#FF5733") for solid color')
PC_TRANSPARENT_NEEDS = q(
    "003",
    'Use "transparent" for transparent background (requires webm_vp9, mov_proresks, or gif output format)',
)
PC_COLOR_PATTERN = q("003", "pattern: ^(transparent|#[0-9A-Fa-f]{3}|#[0-9A-Fa-f]{6})$")
PC_FORM = q("003", "The content type of the request was not application/json or multipart/form-data.")
PC_INVALID_BODY = q("003", "`invalid_request_body`: The request body was empty or invalid.")
PC_MISSING = q("003", "`missing_parameter`: A required parameter was not provided.")
PC_INVALID = q("003", "`invalid_parameter`: A parameter was provided but it was invalid.")
PC_CONTENT_TYPE = q(
    "003",
    "`unsupported_content_type`: The content type of the request was not application/json or multipart/form-data.",
)
PC_MALFORMED = q("003", "`malformed_image`: The image could not be decoded.")
PC_UNSUPPORTED = q("003", "`unsupported_image_format`: The image format is not supported.")
PC_TOO_LARGE = q("003", "`file_size_too_large`: The image file size is too large.")
PC_TOO_HIGH = q("003", "`resolution_too_high`: The image resolution is too high.")
PC_UNKNOWN_FG = q("003", "`unknown_foreground`: The foreground subject of the image could not be detected.")
PC_MAX_SIZE = q("003", "Max size: 100MB")
PC_MAX_DURATION = q("003", "Max duration: 60 seconds")
PC_FORMATS = q("003", "Supported formats: MP4, MOV, WebM, MKV, GIF")
PC_RESOLUTION = q("003", "Resolution: 64x64 to 4096x4096 pixels")
PC_401 = q("003", "The authentication token is missing or invalid.")
PC_403 = q("003", "Returned when you have insufficient credits to perform the requested action.")
PC_429 = q("003", "description: Rate limit exceeded")
PC_400_LIMITS = q("003", "often returned when the input image exceeds API limits.")

# --- 004: removebgvideo Process Video -----------------------------------------------------------------------
RBV_CREATED = q("004", "success | boolean | Request accepted")
RBV_STATUS = q("004", "status | string | Initial status, usually processing")
RBV_VIDEO_URL = q("004", "video_url | string | yes | Input video URL (from upload or external URL)")
RBV_FORMAT_DEFAULT = q(
    "004", "output_format | string | no | Default webm; webm/mov/mp4/gif/webp/png_sequence"
)
RBV_BG_DEFAULT = q(
    "004", "bg_type | string | no | Default transparent; transparent/green/white/black/blue/custom"
)
RBV_BG_COLOR = q("004", "bg_color | number[] | no | RGB array for custom background")
RBV_MODEL_DEFAULT = q("004", "model | string | no | Default original; original/light/pro/human")
RBV_WEBHOOK = q("004", "webhook_url | string | no | Receive job.started/completed/failed callbacks")
RBV_AUTO_START = q("004", "auto_start | boolean | no | Default true; create draft job when false")
RBV_NESTED = q("004", '"background": { "type": "transparent" },')
RBV_DRAFT = q("004", "Draft + /v1/jobs/{job_id}/start | Enterprise workflows requiring pre-validation")
RBV_LEGACY = q("004", "Direct /api/process | Simple integrations and legacy compatibility")
AUTH = q("004", "Authentication | Call endpoint with valid and invalid key, confirm 200 vs 401")
RATE = q("004", "Rate limits | Burst test and confirm 429 handling with backoff")
IDEMPOTENCY = q("004", "Idempotency | Retry same request and verify no duplicate side effects")
OBSERVABILITY = q("004", "Observability | Confirm request_id/job_id appears in logs and dashboards")
INSUFFICIENT = q("004", "Verify success, failure, timeout, retry, and insufficient-credit paths")

ALL: dict[str, Quote] = {name: value for name, value in globals().items() if isinstance(value, Quote)}
