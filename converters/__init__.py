"""Model conversions: int8 ONNX (onnxruntime QDQ), OpenVINO IR (fp32/fp16/NNCF int8), TensorRT engines.

Every conversion can be validated against its source on a dataset and written as a model package
(:func:`converters.package.convert`); the targets are listed in :mod:`converters.formats`, the CLI
is ``ymir-convert`` (:mod:`converters.cli`). See ``docs/model-package.md``.
"""
