"""One Way Scrambling by Deconvolution: private image classification through an untrusted cloud."""

__version__ = "0.1.0"
