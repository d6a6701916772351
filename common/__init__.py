"""What every process shares, defined once: ``settings`` (the whole configuration surface),
``errors`` (typed failures with their HTTP and gRPC statuses), ``metrics`` and ``metrics_dir``
(Prometheus, multiprocess), ``logs`` and ``procfs``."""
