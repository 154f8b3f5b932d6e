"""Plugin models, registered with torchreid by ``direid_plugin.registry.register_all``."""

# name -> factory(num_classes, loss='softmax', pretrained=True, use_gpu=True, **kwargs)
MODEL_FACTORIES = {}
