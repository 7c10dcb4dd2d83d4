"""Builds the Cython kernels; everything else is declared in pyproject.toml.

Every op family is one folder under kernels/ (installed as fastnlp.kernels.<family>); a folder's
``_cython_impl.pyx`` becomes the extension ``fastnlp.kernels.<family>._cython_impl``.

Optimisation is -O3 without -march=native so built wheels run on any x86-64/aarch64 CPU;
set FASTNLP_NATIVE=1 to compile for the building machine's own instruction set.
"""
import os
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent
compile_args = ["-O3"]
if os.environ.get("FASTNLP_NATIVE") == "1":
    compile_args.append("-march=native")

families = sorted(p.parent.name for p in (HERE / "kernels").glob("*/__init__.py"))
extensions = [
    Extension(
        f"fastnlp.kernels.{source.parent.name}._cython_impl",
        [str(source.relative_to(HERE))],
        include_dirs=[numpy.get_include(), str(source.parent)],  # a family's C headers sit beside it
        extra_compile_args=compile_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for source in sorted((HERE / "kernels").glob("*/_cython_impl.pyx"))
]

setup(
    packages=["fastnlp", "fastnlp.cli", "fastnlp.datasets", "fastnlp.layers", "fastnlp.models", "fastnlp.vectors",
              "fastnlp.kernels"] + [f"fastnlp.kernels.{family}" for family in families],
    package_data={f"fastnlp.kernels.{family}": ["*.cu", "*.pyx", "*.h"] for family in families},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
)
