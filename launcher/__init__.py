"""``make run``'s foreground: ``python -m launcher supervisord.conf`` runs supervisord with its log on the
terminal and in ``<run dir>/service.log``, stops every program on Ctrl-C, and announces once when the
service is ready (``announce_ready``)."""
