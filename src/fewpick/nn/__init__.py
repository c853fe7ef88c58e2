"""Network building blocks (plain PyTorch; no torchvision needed)."""

from fewpick.nn.cnn import PickerCNN

__all__ = ["PickerCNN"]
