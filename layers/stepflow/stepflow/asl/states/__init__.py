"""One module per ASL state type (re-exported by :mod:`stepflow.asl`)."""
