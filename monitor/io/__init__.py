"""Files in and out: NIfTI masks and images (``nifti``), dataset layouts and names (``layouts``, the one
reader of ACDC/nnU-Net names, ``Info.cfg``, frames and stems), and what a watched file is
(``identity``: names, folders and sidecars -> case key, phase, segmenter), and file hashes
(``files``).

Example:
    >>> from monitor.io import load_mask
    >>> volume = load_mask("patient101_ED.nii.gz")     # MaskVolume, labels uint8 [z, y, x]
"""

from monitor.io.files import file_sha256
from monitor.io.nifti import Limits, MaskVolume, load_image, load_mask, save_labels

__all__ = ["Limits", "MaskVolume", "file_sha256", "load_image", "load_mask", "save_labels"]
