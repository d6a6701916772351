"""What tools (``scripts/``) and tests (``tests/``) both drive the service with, imported by both.

``service_process`` starts the real service on free 127.0.0.1 ports, ``image_server`` serves
photos and hostile responses, ``predictors`` are the clients and the acceptance score,
``steady_load`` the load under operator actions, ``slow_clients`` the clients that drip,
``ports`` free ports to start them on, ``polling`` the wait for what another process brings about.
"""
