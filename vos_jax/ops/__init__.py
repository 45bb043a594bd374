"""Pure jittable ops: matching (global/local), correlation, warps."""
