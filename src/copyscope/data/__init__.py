"""Loading images: built-in datasets, arrays, IDX files, image folders and run directories."""

from copyscope.data.imageset import ImageSet
from copyscope.data.spec import from_array, load

__all__ = ["ImageSet", "from_array", "load"]
