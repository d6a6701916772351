"""The Open Inference Protocol ("KServe v2") over the request core: a transport like HTTP and gRPC.

``model_io`` says what each repository model is under the protocol (its tensors, parameters and
answers) and runs an inference through the one facade, ``serving.DetectionService``; ``tensors``
holds the wire-neutral tensors. The REST adapter is ``http_service.v2_api``, the gRPC one
``grpc_service.inference_servicer``.
"""
