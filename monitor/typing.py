"""Type aliases shared by the stages (one definition each; import them from here).

Arrays are ``[z, y, x]`` everywhere and their spacing is given in the same axis order.
"""

from __future__ import annotations

__all__ = ["Shape3", "Spacing3"]

#: Voxel size (dz, dy, dx) in mm, in array-axis order.
Spacing3 = tuple[float, float, float]
#: Array shape [z, y, x] in voxels.
Shape3 = tuple[int, int, int]
