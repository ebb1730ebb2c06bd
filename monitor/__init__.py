"""cmr-monitor: ground-truth-free quality control of cardiac MRI segmentation masks."""

__version__ = "0.1.0"

__all__ = ["__version__"]
