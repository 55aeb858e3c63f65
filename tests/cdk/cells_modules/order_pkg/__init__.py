"""A cells package the CDK tests ship (its cells are in the ``cells`` submodule)."""
