"""Using a trained model: the Python API (``attrnet.load``), ONNX export and onnxruntime inference.

Importing this package (and ``attrnet.inference.api``) does not import torch: a model loaded
from an ``.onnx`` file predicts, decodes, gives features and searches with numpy, Pillow,
pandas and onnxruntime only (``show`` adds matplotlib).
"""
