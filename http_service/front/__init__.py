"""The buffering front on the public HTTP port: nginx, configured from the service's settings."""
