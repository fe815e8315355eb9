"""Generate SFT data with a model: Self-Instruct and three kinds of backtranslation."""
