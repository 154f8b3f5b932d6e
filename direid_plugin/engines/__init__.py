"""Training engines (torchreid Engine subclasses) and the evaluation step they share."""
