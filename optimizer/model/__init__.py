"""The MILP: one module per concern, assembled by `build.build_model`."""
