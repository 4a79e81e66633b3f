# setuptools reads everything from pyproject.toml; cffi_modules is the one key it
# cannot express there, so it lives here.
from setuptools import setup

setup(cffi_modules=["native/build_shim.py:ffibuilder"])
