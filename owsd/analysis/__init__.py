"""Statistics and figures that show what the cloud sees and learns (paper §5.1–5.2, attack curves)."""
