"""cnnviz: explore the classic CNNs of "Dive into Deep Learning"."""
__version__ = "0.1.0"
