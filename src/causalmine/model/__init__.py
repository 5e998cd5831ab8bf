"""The unified network and its parts: backbone, pooling, heads, losses."""
