"""The DEVC networks as plain ``nn.Module`` s whose state-dict keys equal the authors' files.

Nothing here knows about VapourSynth, files or devices: modules take tensors and return tensors.
"""
from .colornet import ColorVidNet
from .vgg import VGG19Features
from .warpnet import WarpNet

__all__ = ["ColorVidNet", "VGG19Features", "WarpNet"]
