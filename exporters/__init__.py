"""Build-time machinery: turn upstream weights into the TorchScript detectors ``model/`` serves.

Fetching npm tarballs, reading TF.js graphs, the ported architectures and the
exporters live here, apart from the runtime core: a serving process loads the
exported TorchScript and never imports this package.
"""
