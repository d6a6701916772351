"""The model runtime: the repository of exports, loading and verifying them, and their numerics.

``repository`` holds the models and swaps versions; ``detector`` loads one export (``card`` is
its sidecar, ``compiled_body`` its int8 body, ``vision_ops`` torchvision's operators) and runs it
on the process's one ``inference_thread``; ``precision``, ``cpu`` and ``memory`` choose how it
computes on this machine.
"""
