"""Plugin datasets, registered with torchreid by ``direid_plugin.registry.register_all``."""

# name -> ImageDataset class (or functools.partial of one)
DATASETS = {}
