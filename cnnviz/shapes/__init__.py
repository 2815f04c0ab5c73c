"""Shapes without forward passes: size arithmetic, the layer table, the valid input sizes."""
