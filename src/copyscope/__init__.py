"""copyscope: does this generative model store copies of its training data?"""

__version__ = "0.1.0"
