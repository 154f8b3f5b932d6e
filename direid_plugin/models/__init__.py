"""Plugin models, registered with torchreid by ``direid_plugin.registry.register_all``."""
from direid_plugin.models.ddgan import ddgan, from_config as ddgan_from_config
from direid_plugin.models.dfen import dfen, from_config as dfen_from_config

# name -> factory(num_classes, loss='softmax', pretrained=True, use_gpu=True, **kwargs)
MODEL_FACTORIES = {"ddgan": ddgan, "dfen": dfen}

# name -> fn(cfg) -> extra factory kwargs (architecture options from the model's config node)
MODEL_CONFIG_KWARGS = {"ddgan": ddgan_from_config, "dfen": dfen_from_config}
