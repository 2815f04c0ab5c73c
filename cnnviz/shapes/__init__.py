"""Shapes without forward passes: the layer table and the valid input sizes, from the size
arithmetic of :mod:`cnnviz.models.arithmetic`."""
