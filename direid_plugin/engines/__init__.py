"""Training engines: torchreid Engine subclasses with the plugin mixin (base.py), built by name (builder.py)."""
