"""Install direid_plugin: DI-REID (degradation-invariant Re-ID) as a torchreid plugin."""
from setuptools import find_packages, setup

# torchreid==0.2.5 declares none of its own imports; they are listed here so that
# `pip install -e .` on a fresh machine gives a working toolbox.
TORCHREID_RUNTIME = [
    "numpy>=2.0",  # torchreid's cuhk03 metric uses np.bool, absent in numpy 1.24-1.26
    "Pillow",
    "scipy",
    "opencv-python-headless",
    "h5py",
    "six",
    "tensorboard",
    "matplotlib",
]

EXPORT = ["onnx"]
# The 19 ImageNet-C corruptions of the corruption benchmark (data/corruptions.py): the maintained
# fork that runs on numpy 2, pinned (it brings scikit-image, scipy, numba and opencv-python, ~700 MB).
CORRUPTIONS = ["imagecorruptions-imaug==1.1.5"]

setup(
    name="direid_plugin",
    version="0.1.0",
    description="Degradation-invariant person Re-ID (DI-REID: DDGAN + DFEN) as a torchreid plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["direid_plugin", "direid_plugin.*"]),
    include_package_data=True,
    install_requires=[
        # torch and torchvision must be the registry's matched pair: install them together
        # first (`pip install torch torchvision`), see README.
        "torch>=2.6",
        "torchvision",
        "torchreid==0.2.5",
        "yacs",
        "gdown",
        "tabulate",
        "tqdm",
        "PyYAML",
    ] + TORCHREID_RUNTIME,
    extras_require={
        # ONNX export (tools/export_onnx.py); torch's exporter imports onnx.
        "export": EXPORT,
        "corruptions": CORRUPTIONS,
        # CI runs `pip install -e '.[test]'`: the export tests need the exporter and onnxruntime;
        # Cython builds torchreid's compiled ranking, the reference tests/test_rank_cy_reference.py
        # and tools/benchmark_eval.py compare with (tools/rank_cy_reference.py); the corruption
        # tests need the corruption library.
        "test": ["pytest", "pytest-timeout", "onnxruntime", "cython"] + EXPORT + CORRUPTIONS,
    },
    entry_points={
        "console_scripts": [
            "direid-train=direid_plugin.cli.train:main",
            "direid-test=direid_plugin.cli.test:main",
            "direid-prepare-data=direid_plugin.cli.prepare_data:main",
            "direid-pipeline=direid_plugin.cli.pipeline:main",
            "direid-visualize=direid_plugin.cli.visualize:main",
            "direid-export-onnx=direid_plugin.cli.export_onnx:main",
            "direid-evaluate-stage1=direid_plugin.cli.evaluate_stage1:main",
        ]
    },
)
