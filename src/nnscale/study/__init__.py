"""The study: everything `nnscale run` does, end to end."""
