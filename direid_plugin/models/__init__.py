"""Plugin models. Importing a model's module registers it (``registry.plugin_model``); this package
imports every one of them, so ``registry.PLUGIN_MODELS`` is complete once it is imported."""
from direid_plugin.models import ddgan, dfen  # noqa: F401
