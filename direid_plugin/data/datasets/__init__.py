"""Plugin datasets, registered with torchreid by ``import direid_plugin``."""
import functools

from direid_plugin.data.datasets.caviar import CAVIAR
from direid_plugin.data.datasets.corrupted import corrupted_datasets
from direid_plugin.data.datasets.mlr_cuhk03 import MLRCUHK03, MLRCUHK03Folder
from direid_plugin.data.datasets.mlr_viper import MLRViper
from direid_plugin.data.datasets.pku_reid import PKUReid
from direid_plugin.data.datasets.synthetic import SyntheticMLR
from direid_plugin.data.datasets.wrappers import STOCK_DATASETS, wrapper_datasets

# name -> ImageDataset class (or functools.partial of one)
DATASETS = {
    "pku_reid": PKUReid,
    "synthetic_mlr": SyntheticMLR,
    # A few identities at 64x32: smoke runs of whole pipelines in seconds (tests, quick checks).
    "synthetic_mlr_tiny": functools.partial(SyntheticMLR, num_train_ids=8, num_test_ids=6, images_per_camera=2,
                                            height=64, width=32),
    "mlr_viper": MLRViper,
    "mlr_viper_clean": functools.partial(MLRViper, clean_queries=True),  # same splits, original queries
    "mlr_cuhk03": MLRCUHK03,
    "mlr_cuhk03_folder": MLRCUHK03Folder,
    "caviar": CAVIAR,
}
PLUGIN_BASES = tuple(DATASETS)
# mlr_<stock> / lowlight_<stock> for torchreid's datasets; the dedicated entries above keep their names.
DATASETS.update(wrapper_datasets(taken=DATASETS))
# corrupted_<name> / corrupted_query_<name> / corrupted_gallery_<name> for torchreid's datasets and
# the plugin's own; other bases and fixed corruptions are registered when named (datasets/corrupted.py).
DATASETS.update(corrupted_datasets(STOCK_DATASETS + PLUGIN_BASES))
# <name>_val: the same protocol on held-out training identities of each split (model selection
# without the test identities; splits.validation_split), sized like MLR-CUHK03's test set.
VALIDATION_IDS = 100
DATASETS.update({f"{name}_val": functools.partial(DATASETS[name], validation_ids=VALIDATION_IDS)
                 for name in ("mlr_viper", "mlr_viper_clean", "mlr_cuhk03")})


def validation_name(name):
    """The registered validation variant of dataset ``name``."""
    if f"{name}_val" not in DATASETS:
        raise ValueError(f"dataset '{name}' has no validation variant '{name}_val'; "
                         f"those registered are {sorted(n for n in DATASETS if n.endswith('_val'))}")
    return f"{name}_val"

