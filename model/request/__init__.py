"""The request path: from an image URL or upload to named detections, the same for every transport.

``serving`` wraps one prediction with its metrics and error hygiene; ``pipeline`` fetches
(``fetch``), decodes (``images``, within ``decode_budget``), admits (``admission``) and asks the
model runtime; ``options`` are a request's detection options; ``annotate`` and ``rle`` shape
answers.
"""
