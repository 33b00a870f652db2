"""The colorization networks as plain ``nn.Module`` s whose state-dict keys equal the authors' files.

DEVC (``ColorVidNet``, ``VGG19Features``, ``WarpNet``) and the DDColor image colorizer
(``DDColor``, with its ConvNeXt encoder). Nothing here knows about VapourSynth, files or
devices: modules take tensors and return tensors.
"""
from .colornet import ColorVidNet
from .ddcolor import DDColor
from .vgg import VGG19Features
from .warpnet import WarpNet

__all__ = ["ColorVidNet", "DDColor", "VGG19Features", "WarpNet"]
