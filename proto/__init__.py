"""Generated gRPC modules (``make setup`` runs grpc_tools.protoc into this folder) and their .proto files."""
