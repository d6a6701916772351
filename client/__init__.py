"""A small command-line client for the service (the ``detect`` console script)."""
