from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    DRAFT: _ClassVar[JobStatus]
    QUEUED: _ClassVar[JobStatus]
    PROCESSING: _ClassVar[JobStatus]
    COMPLETED: _ClassVar[JobStatus]
    FAILED: _ClassVar[JobStatus]
    CANCELLED: _ClassVar[JobStatus]
JOB_STATUS_UNSPECIFIED: JobStatus
DRAFT: JobStatus
QUEUED: JobStatus
PROCESSING: JobStatus
COMPLETED: JobStatus
FAILED: JobStatus
CANCELLED: JobStatus

class Source(_message.Message):
    __slots__ = ("url", "asset_id")
    URL_FIELD_NUMBER: _ClassVar[int]
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    url: str
    asset_id: str
    def __init__(self, url: _Optional[str] = ..., asset_id: _Optional[str] = ...) -> None: ...

class Trim(_message.Message):
    __slots__ = ("start_s", "end_s")
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    start_s: float
    end_s: float
    def __init__(self, start_s: _Optional[float] = ..., end_s: _Optional[float] = ...) -> None: ...

class Background(_message.Message):
    __slots__ = ("kind", "rgb", "image")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Background.Kind]
        WHITE: _ClassVar[Background.Kind]
        COLOR: _ClassVar[Background.Kind]
        IMAGE: _ClassVar[Background.Kind]
        TRANSPARENT: _ClassVar[Background.Kind]
    KIND_UNSPECIFIED: Background.Kind
    WHITE: Background.Kind
    COLOR: Background.Kind
    IMAGE: Background.Kind
    TRANSPARENT: Background.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    RGB_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    kind: Background.Kind
    rgb: int
    image: Source
    def __init__(self, kind: _Optional[_Union[Background.Kind, str]] = ..., rgb: _Optional[int] = ..., image: _Optional[_Union[Source, _Mapping]] = ...) -> None: ...

class JobSpec(_message.Message):
    __slots__ = ("source", "trim", "model", "background", "output_format", "webhook_url", "owner", "dialect", "text_prompt")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRIM_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BACKGROUND_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DIALECT_FIELD_NUMBER: _ClassVar[int]
    TEXT_PROMPT_FIELD_NUMBER: _ClassVar[int]
    source: Source
    trim: Trim
    model: str
    background: Background
    output_format: str
    webhook_url: str
    owner: str
    dialect: str
    text_prompt: str
    def __init__(self, source: _Optional[_Union[Source, _Mapping]] = ..., trim: _Optional[_Union[Trim, _Mapping]] = ..., model: _Optional[str] = ..., background: _Optional[_Union[Background, _Mapping]] = ..., output_format: _Optional[str] = ..., webhook_url: _Optional[str] = ..., owner: _Optional[str] = ..., dialect: _Optional[str] = ..., text_prompt: _Optional[str] = ...) -> None: ...

class AudioInfo(_message.Message):
    __slots__ = ("index", "codec", "channels", "sample_rate", "layout")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    index: int
    codec: str
    channels: int
    sample_rate: int
    layout: str
    def __init__(self, index: _Optional[int] = ..., codec: _Optional[str] = ..., channels: _Optional[int] = ..., sample_rate: _Optional[int] = ..., layout: _Optional[str] = ...) -> None: ...

class VideoInfo(_message.Message):
    __slots__ = ("container", "size_bytes", "duration_s", "width", "height", "rotation", "fps_nominal", "fps_avg", "frame_count", "video_codec", "pix_fmt", "bit_depth", "audio")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    FPS_NOMINAL_FIELD_NUMBER: _ClassVar[int]
    FPS_AVG_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    VIDEO_CODEC_FIELD_NUMBER: _ClassVar[int]
    PIX_FMT_FIELD_NUMBER: _ClassVar[int]
    BIT_DEPTH_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    container: str
    size_bytes: int
    duration_s: float
    width: int
    height: int
    rotation: int
    fps_nominal: float
    fps_avg: float
    frame_count: int
    video_codec: str
    pix_fmt: str
    bit_depth: int
    audio: _containers.RepeatedCompositeFieldContainer[AudioInfo]
    def __init__(self, container: _Optional[str] = ..., size_bytes: _Optional[int] = ..., duration_s: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., rotation: _Optional[int] = ..., fps_nominal: _Optional[float] = ..., fps_avg: _Optional[float] = ..., frame_count: _Optional[int] = ..., video_codec: _Optional[str] = ..., pix_fmt: _Optional[str] = ..., bit_depth: _Optional[int] = ..., audio: _Optional[_Iterable[_Union[AudioInfo, _Mapping]]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "spec", "status", "progress", "stage", "error_code", "error", "result_key", "result_url", "credits", "source_seconds", "stage_seconds", "created_at", "updated_at", "info", "request_id", "weights")
    class StageSecondsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_KEY_FIELD_NUMBER: _ClassVar[int]
    RESULT_URL_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STAGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    spec: JobSpec
    status: JobStatus
    progress: float
    stage: str
    error_code: str
    error: str
    result_key: str
    result_url: str
    credits: float
    source_seconds: float
    stage_seconds: _containers.ScalarMap[str, float]
    created_at: str
    updated_at: str
    info: VideoInfo
    request_id: str
    weights: str
    def __init__(self, id: _Optional[str] = ..., spec: _Optional[_Union[JobSpec, _Mapping]] = ..., status: _Optional[_Union[JobStatus, str]] = ..., progress: _Optional[float] = ..., stage: _Optional[str] = ..., error_code: _Optional[str] = ..., error: _Optional[str] = ..., result_key: _Optional[str] = ..., result_url: _Optional[str] = ..., credits: _Optional[float] = ..., source_seconds: _Optional[float] = ..., stage_seconds: _Optional[_Mapping[str, float]] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., info: _Optional[_Union[VideoInfo, _Mapping]] = ..., request_id: _Optional[str] = ..., weights: _Optional[str] = ...) -> None: ...

class ProgressEvent(_message.Message):
    __slots__ = ("job_id", "stage", "status", "progress", "frames_done", "frames_total", "error_code", "message", "at")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DONE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    stage: str
    status: JobStatus
    progress: float
    frames_done: int
    frames_total: int
    error_code: str
    message: str
    at: str
    def __init__(self, job_id: _Optional[str] = ..., stage: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., progress: _Optional[float] = ..., frames_done: _Optional[int] = ..., frames_total: _Optional[int] = ..., error_code: _Optional[str] = ..., message: _Optional[str] = ..., at: _Optional[str] = ...) -> None: ...
