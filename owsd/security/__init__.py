"""Measuring confidentiality: the adversary's material gathered from the cache, the attack curves over its
resources, what each defence costs, and the key budget read off the curves."""
