"""The network as a graph: torch.fx is its record (nodes with module paths, typed edges)."""
