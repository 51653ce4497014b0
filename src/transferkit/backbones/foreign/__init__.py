"""Frozen image backbones from other frameworks: ``onnx:PATH``, ``keras:PATH``, ``tfhub:PATH``,
and packaged ONNX models (``opennsfw``), all run as checked ONNX graphs by ONNX Runtime.

``config``: the preprocessing a model declares beside it; ``onnx_graph``: the checks and the cut
at the embedding tensor; ``backbone``: the runner; ``convert``: Keras / SavedModel to ONNX in a
subprocess, cached; ``specs``: the dynamic names; ``packaged``: registered models.
"""
