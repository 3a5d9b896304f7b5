from vbg.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StageRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ProbeRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class IngestReply(_message.Message):
    __slots__ = ("source_key", "info", "billed_seconds")
    SOURCE_KEY_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    BILLED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    source_key: str
    info: _common_pb2.VideoInfo
    billed_seconds: float
    def __init__(self, source_key: _Optional[str] = ..., info: _Optional[_Union[_common_pb2.VideoInfo, _Mapping]] = ..., billed_seconds: _Optional[float] = ...) -> None: ...

class SegmentReply(_message.Message):
    __slots__ = ("frames", "chunks", "manifest_key")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_KEY_FIELD_NUMBER: _ClassVar[int]
    frames: int
    chunks: int
    manifest_key: str
    def __init__(self, frames: _Optional[int] = ..., chunks: _Optional[int] = ..., manifest_key: _Optional[str] = ...) -> None: ...

class FrameBand(_message.Message):
    __slots__ = ("index", "t", "width", "height", "channels", "y0", "rows", "data", "last_band", "pix_fmt")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    T_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_BAND_FIELD_NUMBER: _ClassVar[int]
    PIX_FMT_FIELD_NUMBER: _ClassVar[int]
    index: int
    t: float
    width: int
    height: int
    channels: int
    y0: int
    rows: int
    data: bytes
    last_band: bool
    pix_fmt: str
    def __init__(self, index: _Optional[int] = ..., t: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., channels: _Optional[int] = ..., y0: _Optional[int] = ..., rows: _Optional[int] = ..., data: _Optional[bytes] = ..., last_band: _Optional[bool] = ..., pix_fmt: _Optional[str] = ...) -> None: ...

class EncodeReply(_message.Message):
    __slots__ = ("result_key", "frames", "size_bytes")
    RESULT_KEY_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    result_key: str
    frames: int
    size_bytes: int
    def __init__(self, result_key: _Optional[str] = ..., frames: _Optional[int] = ..., size_bytes: _Optional[int] = ...) -> None: ...
