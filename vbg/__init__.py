"""Generated gRPC/protobuf code (make protos). Do not edit."""
