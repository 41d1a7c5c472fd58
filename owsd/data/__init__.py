"""Images with stable ids, label subsets and splits, and the on-disk cache of their pairs."""
