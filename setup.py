"""Builds the Cython kernels; everything else is declared in pyproject.toml.

Optimisation is -O3 without -march=native so built wheels run on any x86-64/aarch64 CPU;
set FASTNLP_NATIVE=1 to compile for the building machine's own instruction set.
"""
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

compile_args = ["-O3"]
if os.environ.get("FASTNLP_NATIVE") == "1":
    compile_args.append("-march=native")

extensions = [
    Extension(
        "fastnlp.kernels._cython_ops",
        ["kernels/_cython_ops.pyx"],
        include_dirs=[numpy.get_include()],
        extra_compile_args=compile_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )
)
