"""Training engines: torchreid Engine subclasses with the plugin mixin (base.py); build.py picks one by name."""
