"""Using a trained run: translating images (:mod:`~unpaired.inference.translator`), folders and
splits (:mod:`~unpaired.inference.batch`), tiles, sample grids and export to ONNX/TorchScript."""
