"""Build of emix's one compiled module (everything else is in pyproject.toml).

``emix._small_kernels`` (src/emix/_small_kernels.c: plain C and the Python C
API, no numpy headers) runs small in-memory fits (:mod:`emix.core.small`). It
is optional: where no C compiler is found the install goes on and emix uses
its numpy path, with the same results.

On x86-64 Linux it is linked with glibc's vector math library (libmvec, a
4-wide AVX2 ``exp``) where a test program using it compiles, links and runs;
elsewhere (or if that fails) it is built without it and uses the C library's
scalar ``exp``.
"""

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


class BuildExt(build_ext):
    """build_ext that adds libmvec to the kernels where it works."""

    def build_extension(self, ext):
        if ext.name == "emix._small_kernels" and _libmvec_works(self.compiler):
            ext.define_macros = list(ext.define_macros or []) + [("EMIX_LIBMVEC", "1")]
            ext.libraries = list(ext.libraries or []) + ["mvec", "m"]
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
