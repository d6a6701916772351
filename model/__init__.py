"""The model: what a served detector is, with no request code (fetching and decoding live in ``serving``).

* ``repository``: ``<name>/<version>/`` exports, which version serves, swapped live.
* ``detector``: one export loaded, verified and run on the process's one ``inference_thread``;
  ``card`` is its metadata beside the weights, ``compiled_body`` its int8 body, ``vision_ops``
  torchvision's operators without its Python package.
* Numerics per CPU: ``precision`` (fp32, bf16 or int8), ``cpu`` (what this CPU runs fast),
  ``memory`` (how the heap keeps activations).
* ``coco``: the class names.

The ported architectures and exporting are build time: ``exporters``.
"""
