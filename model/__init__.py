"""The runtime core every serving process imports (never the build-time ``exporters``).

* ``model.runtime``: the model repository, loading and verifying exports, numerics per CPU.
* ``model.request``: the request path, from a URL or upload to detections: fetching,
  decoding, admission and limits, options, answers.
* Here, what both share: ``config`` (settings from the environment), ``errors`` (typed
  failures with their HTTP and gRPC statuses), ``metrics`` and ``metrics_dir`` (Prometheus,
  multiprocess), ``logs``, ``coco`` (class names) and ``procfs``.
"""
