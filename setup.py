"""rnnzoo: recurrent networks of the papers, their optimizers, and TF-Serving exports."""

from setuptools import find_packages, setup

setup(
    name="rnnzoo",
    version="0.1.0",
    description=(
        "Keras 3 model zoo of recurrent networks (MRNN, tensor RNN, resRNN, VL-iRNN, RTRBM) "
        "with Hessian-free and NAG optimizers and TensorFlow-Serving-compatible exports."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["rnnzoo", "rnnzoo.*"]),
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<3.16",
        "tensorflow-text>=2.21,<2.22",
        "tensorflow-serving-api>=2.21,<2.22",
        "grpcio-health-checking>=1.85,<2",
        "aiohttp>=3.14,<4",
        "orjson>=3.13,<4",  # REST JSON: numpy outputs written in C (docs/serving.md, Performance)
        "tensorflow-datasets>=4.9,<4.10",
        "absl-py>=2.1,<3",
        "numpy>=1.26,<3",
        "scikit-learn>=1.4,<2",
        "matplotlib>=3.8,<4",
        "tensorboard>=2.21,<2.22",
        "sentencepiece>=0.2,<0.3",
        "sacrebleu>=2.4,<3",
    ],
    extras_require={
        "test": ["pytest>=8,<10", "scipy>=1.11,<2", "nltk>=3.9,<4"],
        # METEOR of x->en translation (also needs Debian's wordnet-base and wordnet-sense-index).
        "meteor": ["nltk>=3.9,<4"],
    },
    entry_points={
        "console_scripts": [
            "rnnzoo-demo=rnnzoo.cli.demo:run",
            "rnnzoo-serve=rnnzoo.cli.serve:run",
            "rnnzoo-query=rnnzoo.cli.query:run",
            "rnnzoo-export=rnnzoo.cli.export:run",
            "rnnzoo-train=rnnzoo.cli.train:run",
            "rnnzoo-evaluate=rnnzoo.cli.evaluate:run",
            "rnnzoo-reproduce=rnnzoo.cli.reproduce:run",
        ],
    },
)
