"""What is measured: the selection of kept entries, the backward kernels (torch, native
and their types), the scratch workspace and allocator they use, and ``MePropLinear``."""
