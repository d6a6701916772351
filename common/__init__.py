"""What every process shares, defined once: ``settings`` (the whole configuration surface),
``errors`` (typed failures with their HTTP and gRPC statuses), ``limits`` (how large a request may
be, for nginx, gunicorn, the app and the gRPC server), ``metrics`` and ``metrics_dir``
(Prometheus, multiprocess), ``logs`` and ``procfs``."""
