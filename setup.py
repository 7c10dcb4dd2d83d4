"""Builds the Cython kernels when it can; everything else is declared in pyproject.toml.

Every op family is one folder under kernels/ (installed as fastnlp.kernels.<family>); a folder's
``_cython_impl.pyx`` becomes the extension ``fastnlp.kernels.<family>._cython_impl``. The C
headers every family shares (splitmix64, the lane dot product, the instruction-set dispatch)
are in kernels/include/fastnlp/.

The extensions are optional: without Cython or a working C compiler the install still succeeds,
with a warning, and the library runs on Numba and NumPy (``fastnlp backends`` says why Cython
is missing). Optimisation is -O3 without -march=native so built wheels run on any x86-64/aarch64
CPU; set FASTNLP_NATIVE=1 to compile for the building machine's own instruction set.
"""
import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
SHARED_INCLUDE = HERE / "kernels" / "include"
compile_args = ["-O3"]
if os.environ.get("FASTNLP_NATIVE") == "1":
    compile_args.append("-march=native")

families = sorted(p.parent.name for p in (HERE / "kernels").glob("*/__init__.py"))


def _warn(message: str) -> None:
    print(f"WARNING (fastnlp): {message}; the Cython backend will be unavailable, Numba and NumPy run "
          "every op. Reinstall with a C compiler to build it.", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """Builds each extension it can and skips, with a warning, any that fails to compile: a
    machine without a C compiler still gets a working install."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler at all: distutils raises before any extension
            _warn(f"the C extensions could not be built ({type(exc).__name__}: {exc})")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # CompileError, LinkError, a compiler that is not there
            _warn(f"{ext.name} could not be built ({type(exc).__name__}: {exc})")


def _extensions():
    try:
        import numpy
        from Cython.Build import cythonize
    except ImportError as exc:
        _warn(f"Cython or NumPy is missing at build time ({exc})")
        return []
    extensions = [
        Extension(
            f"fastnlp.kernels.{source.parent.name}._cython_impl",
            [str(source.relative_to(HERE))],
            # a family's own C headers sit beside its .pyx; the shared ones in kernels/include
            include_dirs=[numpy.get_include(), str(source.parent), str(SHARED_INCLUDE)],
            extra_compile_args=compile_args,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for source in sorted((HERE / "kernels").glob("*/_cython_impl.pyx"))
    ]
    # Not an op: the runner that puts row-parallel passes on the matrix libraries' OpenMP
    # threads (kernels/threads.py; without it, or without OpenMP, a Python thread pool runs them).
    extensions.append(Extension(
        "fastnlp.kernels._openmp_rows", ["kernels/_openmp_rows.pyx"],
        extra_compile_args=compile_args + ["-fopenmp"], extra_link_args=["-fopenmp"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    ))
    # Not an op either: float32 rows rounded to 16 bits for autocast's operands (kernels/gemm).
    extensions.append(Extension(
        "fastnlp.kernels._half_convert", ["kernels/_half_convert.pyx"],
        include_dirs=[str(SHARED_INCLUDE)], extra_compile_args=compile_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    ))
    return cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )


setup(
    packages=["fastnlp", "fastnlp.cli", "fastnlp.datasets", "fastnlp.layers", "fastnlp.models", "fastnlp.vectors",
              "fastnlp.kernels"] + [f"fastnlp.kernels.{family}" for family in families],
    package_data={"fastnlp.kernels": ["include/fastnlp/*.h", "_openmp_rows.pyx", "_half_convert.pyx"],
                  **{f"fastnlp.kernels.{family}": ["*.cu", "*.pyx", "*.h"] for family in families}},
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
)
