"""Attacks on scrambled images: pure functions of tensors, one module per attack.

Each takes what the adversary holds under a threat model (T1 scrambled images and the cloud's answers,
T2 plus a few labels, T3 plus known (original, scrambled) pairs) and returns the attack's metric. They
know nothing of caches, keys or Lightning; `owsd.security` feeds them and draws the curves.
"""
