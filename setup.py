"""Build of emix's two compiled modules (everything else is in pyproject.toml).

``emix._small_kernels`` (src/emix/_small_kernels.c: plain C with GCC/Clang
vector extensions and the Python C API, no numpy headers) runs the Gaussian
E-step of in-memory blocks and whole small fits (:mod:`emix.core.small`);
``emix._hc_kernels`` (src/emix/_hc_kernels.c) builds mclust's hierarchical
tree (:mod:`emix.core.mclust_hc`). Both are optional: where no suitable C
compiler is found the install goes on and emix uses its numpy paths, with the
same results.

On x86-64 Linux ``_small_kernels`` is linked with glibc's vector math library
(libmvec: 4-wide AVX2 ``exp`` and ``log``) where a test program using it
compiles, links and runs; elsewhere (or if that fails) it is built without it
and uses the C library's scalar functions."""

import os
import platform
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_PROBE = r"""
#include <immintrin.h>
__m256d _ZGVdN4v_exp(__m256d x);
__m256d _ZGVdN4v_log(__m256d x);
__attribute__((target("avx2"))) static double probe(void)
{
    double out[4];
    _mm256_storeu_pd(out, _ZGVdN4v_log(_ZGVdN4v_exp(_mm256_set1_pd(1.0))));
    return out[0];
}
int main(void)
{
    if (!__builtin_cpu_supports("avx2"))
        return 0; /* links: enough (the module checks the CPU at run time) */
    double e = probe();
    return (e > 0.999999999 && e < 1.000000001) ? 0 : 1;
}
"""


def _libmvec_works(compiler):
    """Whether a program calling libmvec's AVX2 exp and log compiles, links and runs."""
    if not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")):
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe_mvec.c")
        with open(src, "w") as fh:
            fh.write(_PROBE)
        try:
            objects = compiler.compile([src], output_dir=tmp)
            exe = os.path.join(tmp, "probe_mvec")
            compiler.link_executable(objects, exe, libraries=["mvec", "m"])
            return subprocess.run([exe], check=False, timeout=30).returncode == 0
        except Exception:  # no compiler support, no libmvec, or it did not run
            return False


def _accepts_flag(compiler, flag):
    """Whether the compiler compiles a trivial file with ``flag``."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe_flag.c")
        with open(src, "w") as fh:
            fh.write("int emix_probe(void) { return 0; }\n")
        try:
            compiler.compile([src], output_dir=tmp, extra_postargs=[flag])
            return True
        except Exception:
            return False


class BuildExt(build_ext):
    """build_ext that adds libmvec to the kernels where it works, and drops
    ``-fopenmp-simd`` where the compiler does not know it (the pragmas are
    then ignored: the same results, sums in one lane)."""

    def build_extension(self, ext):
        if ext.name == "emix._small_kernels" and _libmvec_works(self.compiler):
            ext.define_macros = list(ext.define_macros or []) + [("EMIX_LIBMVEC", "1")]
            ext.libraries = list(ext.libraries or []) + ["mvec", "m"]
        if "-fopenmp-simd" in (ext.extra_compile_args or []) and not _accepts_flag(self.compiler, "-fopenmp-simd"):
            ext.extra_compile_args = [a for a in ext.extra_compile_args if a != "-fopenmp-simd"]
        return super().build_extension(ext)


setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=[
        Extension(
            "emix._small_kernels",
            sources=["src/emix/_small_kernels.c"],
            # -fopenmp-simd: the E-step's sums over rows may use vector lanes
            # (the pragmas only; no OpenMP runtime is linked)
            extra_compile_args=["-O3", "-fopenmp-simd"] if sys.platform != "win32" else [],
            optional=True,
        ),
        Extension(
            "emix._hc_kernels",
            sources=["src/emix/_hc_kernels.c"],
            extra_compile_args=["-O3"] if sys.platform != "win32" else [],
            optional=True,
        ),
    ],
)
