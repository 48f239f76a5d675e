"""Build of emix's one compiled module (everything else is in pyproject.toml).

``emix._small_kernels`` (src/emix/_small_kernels.c: plain C and the Python C
API, no numpy headers) is the E-step of small in-memory fits
(:mod:`emix.core.small`). It is optional: where no C compiler is found the
install goes on and emix uses its numpy path, with the same results.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "emix._small_kernels",
            sources=["src/emix/_small_kernels.c"],
            extra_compile_args=["-O3"] if __import__("sys").platform != "win32" else [],
            optional=True,
        )
    ]
)
