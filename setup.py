# Only for cffi_modules: everything else is in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["irqd/_build.py:ffibuilder"])
