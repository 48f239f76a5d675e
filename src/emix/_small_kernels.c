/*
 * emix._small_kernels: the Gaussian E-step of an in-memory block in one call,
 * and the whole EM loop of a small fit (see emix/core/small.py, which owns the
 * Python side and the fallback).
 *
 * For rows x_n (n x D, C order), means mu_k (K x D), precision Cholesky
 * factors U_k (upper triangular, U_k U_k^T = Sigma_k^-1) and weights pi_k:
 *
 *   log pi_k N(x_n | k) = log pi_k + sum_j log U_k,jj - D/2 log(2 pi)
 *                         - |(x_n - mu_k)^T U_k|^2 / 2
 *
 * (the same formula as scikit-learn's and emix's log densities), normalized
 * over k with the max-shift identity (one exp per entry), and the additive
 * statistics shifted at the current means c_k = mu_k:
 *
 *   nk[k]  = sum_n w_n r_nk
 *   s1[k]  = sum_n w_n r_nk (x_n - c_k)
 *   s2[k]  = sum_n w_n r_nk (x_n - c_k)(x_n - c_k)^T   (mode 0; its diagonal
 *            in modes 1 and 2)
 *
 * Written for emix from the formulas above; C99 with GCC/Clang vector
 * extensions and the Python C API (buffer protocol), no numpy headers. Where
 * it does not build, emix runs its numpy path (setup.py marks it optional).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LOG_2PI 1.8378770664093454836
/* emix.core.em.FAR_LOG_PROB: rows whose largest term is not above minus this
   (or NaN) take the general path's scaled recomputation instead */
#define FAR_LOG_PROB 1e6

static int check_len(Py_buffer *b, Py_ssize_t n, const char *name)
{
    if (b->len != n * (Py_ssize_t)sizeof(double)) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes; expected %zd float64 values", name,
                     b->len, n);
        return -1;
    }
    return 0;
}

/* Rows per pass of estep_body: their log densities are computed first, then
 * exponentiated together (vexp), then turned into statistics. */
#define ECHUNK 64
/* doubles of work estep_core needs: c (K), diagonal factors u (K D), the
 * pass's columns xt, differences dk and weighted differences rd (D ECHUNK
 * each), log terms L (K ECHUNK), row maxima M, sums S and their logarithms G
 * (ECHUNK each) */
#define ESTEP_WORK(K, D) ((K) + (K) * (D) + 3 * (D) * ECHUNK + (K) * ECHUNK + 3 * ECHUNK)

#if defined(EMIX_LIBMVEC) && defined(__x86_64__)
#include <immintrin.h>
/* glibc's vector math library (libmvec): exp and log of 4 doubles with AVX2,
 * at most 4 ulp from the correctly rounded values (glibc's manual); setup.py
 * links it only where a test program using both links and runs. */
__m256d _ZGVdN4v_exp(__m256d x);
__m256d _ZGVdN4v_log(__m256d x);
#endif

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define EMIX_X86_DISPATCH 1
/* AVX2 with FMA: the E-step's variant compiled for it (4 rows per instruction) */
static int cpu_avx2_fma = -1;
static int have_avx2_fma(void)
{
    if (cpu_avx2_fma < 0) {
        __builtin_cpu_init();
        cpu_avx2_fma = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
    }
    return cpu_avx2_fma;
}
#endif

/* y[i] <- f(x[i]) for a function of the C library with a libmvec AVX2 form
 * VF (4 at a time where the CPU and the C library allow): defines NAME */
#if defined(EMIX_LIBMVEC) && defined(__x86_64__)
#define EMIX_VMAP(NAME, F, VF)                                                                    \
    __attribute__((target("avx2"))) static void NAME##_avx2(const double *x, double *y, Py_ssize_t n) \
    {                                                                                             \
        Py_ssize_t i = 0;                                                                         \
        for (; i + 4 <= n; i += 4)                                                                \
            _mm256_storeu_pd(y + i, VF(_mm256_loadu_pd(x + i)));                                  \
        for (; i < n; i++)                                                                        \
            y[i] = F(x[i]);                                                                       \
    }                                                                                             \
    static void NAME(const double *x, double *y, Py_ssize_t n)                                    \
    {                                                                                             \
        if (have_avx2_fma()) {                                                                    \
            NAME##_avx2(x, y, n);                                                                 \
            return;                                                                               \
        }                                                                                         \
        Py_ssize_t i;                                                                             \
        for (i = 0; i < n; i++)                                                                   \
            y[i] = F(x[i]);                                                                       \
    }
#else
#define EMIX_VMAP(NAME, F, VF)                                                                    \
    static void NAME(const double *x, double *y, Py_ssize_t n)                                    \
    {                                                                                             \
        Py_ssize_t i;                                                                             \
        for (i = 0; i < n; i++)                                                                   \
            y[i] = F(x[i]);                                                                       \
    }
#endif
EMIX_VMAP(vexp, exp, _ZGVdN4v_exp)
EMIX_VMAP(vlog, log, _ZGVdN4v_log)

#if defined(__GNUC__) || defined(__clang__)
#define EMIX_ALWAYS_INLINE static inline __attribute__((always_inline))
#else /* other compilers: a hint only (the loops then keep a run-time D) */
#define EMIX_ALWAYS_INLINE static inline
#endif
/* a loop over the rows of a pass whose sums may be reassociated into vector
 * lanes (compiled with -fopenmp-simd; other compilers ignore it) */
#define EMIX_SIMD_SUM(...) _Pragma(EMIX_STR(omp simd reduction(+ : __VA_ARGS__)))
#define EMIX_STR(x) #x

/* 4 doubles as one value (GCC/Clang vector extensions: one AVX2 register in
 * the AVX2 variant, two SSE2 ones otherwise); loads and stores unaligned */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi" /* always inlined: no vector crosses a call */
#endif
typedef double v4d __attribute__((vector_size(32)));
EMIX_ALWAYS_INLINE v4d v4load(const double *p)
{
    v4d v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
EMIX_ALWAYS_INLINE void v4store(double *p, v4d v) { __builtin_memcpy(p, &v, sizeof v); }
EMIX_ALWAYS_INLINE double v4sum(v4d v) { return (v[0] + v[1]) + (v[2] + v[3]); }
/* features up to which the statistics of a component are summed in registers
 * (VMAX + VMAX (VMAX + 1) / 2 accumulators), above by columns */
#define VMAX 12

/* The E-step of a block: log densities, responsibilities, log-likelihood and
 * the statistics shifted at the current means. Rows go in passes of ECHUNK,
 * transposed into columns so that every loop runs over the rows of the pass
 * (contiguous, 4 rows per AVX2 instruction); the log terms of the whole pass
 * go through one vector exp, the row sums through one vector log. */
EMIX_ALWAYS_INLINE int
estep_body(const void *Xv, int xf32, const double *w, Py_ssize_t n, Py_ssize_t D, Py_ssize_t K,
           const double *mu, const double *U, const double *pi, int mode, double *nk,
           double *s1, double *s2, double *work, double *loglik_out, double *sum_w_out,
           double *logmax_out)
{
    int have_w = (w != NULL), status = 0;
    double loglik = 0.0, sum_w = 0.0, logmax = 0.0;
    Py_ssize_t s2len = (mode == 0) ? K * D * D : K * D;
    double *c = work, *u = work + K, *xt = u + K * D, *dk = xt + D * ECHUNK, *rd = dk + D * ECHUNK,
           *L = rd + D * ECHUNK, *M = L + K * ECHUNK, *S = M + ECHUNK, *G = S + ECHUNK;
    Py_ssize_t k, j, l, t, i0;
    for (k = 0; k < K; k++) {
        double ld = 0.0;
        for (j = 0; j < D; j++) {
            double ujj = (mode == 2) ? U[k * D + j] : U[k * D * D + j * D + j];
            u[k * D + j] = ujj;
            ld += log(ujj);
        }
        c[k] = log(pi[k]) + ld - 0.5 * (double)D * LOG_2PI;
        if (isnan(c[k]))
            status = 1;
    }
    memset(nk, 0, sizeof(double) * (size_t)K);
    memset(s1, 0, sizeof(double) * (size_t)(K * D));
    memset(s2, 0, sizeof(double) * (size_t)s2len);
    for (i0 = 0; i0 < n && status == 0; i0 += ECHUNK) {
        const Py_ssize_t cnt = (n - i0 < ECHUNK) ? n - i0 : ECHUNK;
        if (xf32) { /* the pass's columns (float32 data read into float64) */
            const float *Xc = (const float *)Xv + i0 * D;
            for (t = 0; t < cnt; t++)
                for (j = 0; j < D; j++)
                    xt[j * ECHUNK + t] = (double)Xc[t * D + j];
        } else {
            const double *Xc = (const double *)Xv + i0 * D;
            for (t = 0; t < cnt; t++)
                for (j = 0; j < D; j++)
                    xt[j * ECHUNK + t] = Xc[t * D + j];
        }
        /* rows of the pass rounded up to whole vectors: padding rows get x = 0,
         * (finite log terms, ignored) and responsibility 0, so they add nothing */
        const Py_ssize_t cnt4 = (cnt + 3) & ~(Py_ssize_t)3;
        for (t = cnt; t < cnt4; t++)
            for (j = 0; j < D; j++)
                xt[j * ECHUNK + t] = 0.0;
        for (k = 0; k < K; k++) { /* log pi_k N(x_i | k) */
            const double *mk = mu + k * D;
            double *lk = L + k * ECHUNK, ck = c[k];
            if (D <= VMAX) { /* y_j = sum_{l <= j} d_l U_lj, maha = sum_j y_j^2, in registers */
                v4d m[VMAX], h = {0.5, 0.5, 0.5, 0.5};
                const double *Uk = U + k * D * D, *uk = u + k * D;
                for (j = 0; j < D; j++)
                    m[j] = (v4d){mk[j], mk[j], mk[j], mk[j]};
                for (t = 0; t < cnt4; t += 4) {
                    v4d d[VMAX], maha = {0.0, 0.0, 0.0, 0.0};
                    for (j = 0; j < D; j++)
                        d[j] = v4load(xt + j * ECHUNK + t) - m[j];
                    if (mode == 0) {
                        for (j = 0; j < D; j++) {
                            v4d y = d[0] * Uk[j];
                            for (l = 1; l <= j; l++)
                                y += d[l] * Uk[l * D + j];
                            maha += y * y;
                        }
                    } else {
                        for (j = 0; j < D; j++) {
                            v4d y = d[j] * uk[j];
                            maha += y * y;
                        }
                    }
                    v4store(lk + t, ck - h * maha);
                }
            } else if (mode == 0) { /* the same, column by column */
                const double *Uk = U + k * D * D;
                double *y = rd;
                for (j = 0; j < D; j++) {
                    double *dj = dk + j * ECHUNK, m = mk[j];
                    const double *xj = xt + j * ECHUNK;
                    for (t = 0; t < cnt; t++)
                        dj[t] = xj[t] - m;
                }
                for (t = 0; t < cnt; t++)
                    lk[t] = 0.0;
                for (j = 0; j < D; j++) {
                    double u0 = Uk[j];
                    for (t = 0; t < cnt; t++)
                        y[t] = dk[t] * u0;
                    for (l = 1; l <= j; l++) {
                        const double *dl = dk + l * ECHUNK;
                        double ulj = Uk[l * D + j];
                        for (t = 0; t < cnt; t++)
                            y[t] += dl[t] * ulj;
                    }
                    for (t = 0; t < cnt; t++)
                        lk[t] += y[t] * y[t];
                }
                for (t = 0; t < cnt; t++)
                    lk[t] = ck - 0.5 * lk[t];
            } else {
                const double *uk = u + k * D;
                for (t = 0; t < cnt; t++)
                    lk[t] = 0.0;
                for (j = 0; j < D; j++) {
                    const double *xj = xt + j * ECHUNK;
                    double m = mk[j], ukj = uk[j];
                    for (t = 0; t < cnt; t++) {
                        double y = (xj[t] - m) * ukj;
                        lk[t] += y * y;
                    }
                }
                for (t = 0; t < cnt; t++)
                    lk[t] = ck - 0.5 * lk[t];
            }
        }
        for (t = 0; t < cnt; t++) /* each row's largest term (NaN terms never win) */
            M[t] = L[t];
        for (k = 1; k < K; k++) {
            const double *lk = L + k * ECHUNK;
            for (t = 0; t < cnt; t++)
                M[t] = (lk[t] > M[t]) ? lk[t] : M[t];
        }
        for (t = 0; t < cnt; t++)
            if (!(M[t] > -FAR_LOG_PROB)) /* far row or NaN: the general path decides */
                status = 1;
        if (status)
            break;
        for (k = 0; k < K; k++) { /* shifted by the row's largest, then exp */
            double *lk = L + k * ECHUNK;
            for (t = 0; t < cnt; t++)
                lk[t] -= M[t];
            vexp(lk, lk, cnt);
        }
        for (t = 0; t < cnt; t++)
            S[t] = L[t];
        for (k = 1; k < K; k++) {
            const double *lk = L + k * ECHUNK;
            for (t = 0; t < cnt; t++)
                S[t] += lk[t];
        }
        vlog(S, G, cnt);
        {
            double a = 0.0, b = 0.0, sw = 0.0;
            if (have_w) {
                const double *wc = w + i0;
                EMIX_SIMD_SUM(a, b, sw)
                for (t = 0; t < cnt; t++) {
                    a += wc[t] * (M[t] + G[t]);
                    b += wc[t] * G[t]; /* log max_k r_nk = -log s: the ICL's entropy term */
                    sw += wc[t];
                }
                for (t = 0; t < cnt; t++)
                    S[t] = wc[t] / S[t];
            } else {
                EMIX_SIMD_SUM(a, b)
                for (t = 0; t < cnt; t++) {
                    a += M[t] + G[t];
                    b += G[t];
                }
                for (t = 0; t < cnt; t++)
                    S[t] = 1.0 / S[t];
            }
            loglik += a;
            logmax -= b;
            sum_w += sw;
        }
        for (t = cnt; t < cnt4; t++) { /* the padding rows' responsibilities: 0 */
            S[t] = 0.0;
            for (k = 0; k < K; k++)
                L[k * ECHUNK + t] = 0.0;
        }
        for (k = 0; k < K; k++) { /* responsibilities (times the weights) and statistics */
            const double *lk = L + k * ECHUNK, *mk = mu + k * D;
            if (D <= VMAX) { /* every sum of the component in a register */
                v4d an = {0.0, 0.0, 0.0, 0.0}, a1[VMAX], a2[VMAX * (VMAX + 1) / 2], m[VMAX];
                for (j = 0; j < D; j++) {
                    a1[j] = an;
                    m[j] = (v4d){mk[j], mk[j], mk[j], mk[j]};
                }
                for (j = 0; j < (mode == 0 ? D * (D + 1) / 2 : D); j++)
                    a2[j] = an;
                for (t = 0; t < cnt4; t += 4) {
                    v4d r = v4load(lk + t) * v4load(S + t), d[VMAX], rd[VMAX];
                    an += r;
                    for (j = 0; j < D; j++) {
                        d[j] = v4load(xt + j * ECHUNK + t) - m[j];
                        rd[j] = r * d[j];
                        a1[j] += rd[j];
                    }
                    if (mode == 0) {
                        Py_ssize_t q = 0;
                        for (j = 0; j < D; j++)
                            for (l = j; l < D; l++)
                                a2[q++] += rd[j] * d[l];
                    } else {
                        for (j = 0; j < D; j++)
                            a2[j] += rd[j] * d[j];
                    }
                }
                nk[k] += v4sum(an);
                for (j = 0; j < D; j++)
                    s1[k * D + j] += v4sum(a1[j]);
                if (mode == 0) {
                    double *s2k = s2 + k * D * D;
                    Py_ssize_t q = 0;
                    for (j = 0; j < D; j++)
                        for (l = j; l < D; l++)
                            s2k[j * D + l] += v4sum(a2[q++]);
                } else {
                    for (j = 0; j < D; j++)
                        s2[k * D + j] += v4sum(a2[j]);
                }
                continue;
            }
            double a = 0.0; /* wider: sums column by column */
            double *rk = G;
            EMIX_SIMD_SUM(a)
            for (t = 0; t < cnt; t++) {
                double r = lk[t] * S[t];
                rk[t] = r;
                a += r;
            }
            nk[k] += a;
            for (j = 0; j < D; j++) {
                double *dj = dk + j * ECHUNK, *rj = rd + j * ECHUNK, mj = mk[j], b = 0.0;
                const double *xj = xt + j * ECHUNK;
                EMIX_SIMD_SUM(b)
                for (t = 0; t < cnt; t++) {
                    double dd = xj[t] - mj;
                    dj[t] = dd;
                    rj[t] = rk[t] * dd;
                    b += rj[t];
                }
                s1[k * D + j] += b;
            }
            if (mode == 0) {
                double *s2k = s2 + k * D * D;
                for (j = 0; j < D; j++) {
                    const double *rj = rd + j * ECHUNK;
                    for (l = j; l < D; l++) {
                        const double *dl = dk + l * ECHUNK;
                        double b = 0.0;
                        EMIX_SIMD_SUM(b)
                        for (t = 0; t < cnt; t++)
                            b += rj[t] * dl[t];
                        s2k[j * D + l] += b;
                    }
                }
            } else {
                double *s2k = s2 + k * D;
                for (j = 0; j < D; j++) {
                    const double *rj = rd + j * ECHUNK, *dj = dk + j * ECHUNK;
                    double b = 0.0;
                    EMIX_SIMD_SUM(b)
                    for (t = 0; t < cnt; t++)
                        b += rj[t] * dj[t];
                    s2k[j] += b;
                }
            }
        }
    }
    if (status == 0 && mode == 0) { /* mirror the upper triangle */
        for (k = 0; k < K; k++) {
            double *s2k = s2 + k * D * D;
            for (j = 0; j < D; j++)
                for (l = j + 1; l < D; l++)
                    s2k[l * D + j] = s2k[j * D + l];
        }
    }
    *loglik_out = loglik;
    *sum_w_out = have_w ? sum_w : (double)n;
    if (logmax_out != NULL)
        *logmax_out = logmax;
    return status;
}

/* estep_body with the mode and small D as compile-time constants (the
 * compiler unrolls the loops over features and vectorizes those over rows) */
#define ESTEP_ARGS Xv, xf32, w, n, D_, K, mu, U, pi, mode_, nk, s1, s2, work, loglik_out, sum_w_out, logmax_out
#define ESTEP_CASE(d) case d: { const Py_ssize_t D_ = d; return estep_body(ESTEP_ARGS); }
#define ESTEP_CASES(MODE_)                                                                        \
    {                                                                                             \
        const int mode_ = MODE_;                                                                  \
        switch (D) {                                                                              \
        ESTEP_CASE(1) ESTEP_CASE(2) ESTEP_CASE(3) ESTEP_CASE(4) ESTEP_CASE(5) ESTEP_CASE(6)       \
        ESTEP_CASE(7) ESTEP_CASE(8) ESTEP_CASE(9) ESTEP_CASE(10) ESTEP_CASE(11) ESTEP_CASE(12)    \
        default: { const Py_ssize_t D_ = D; return estep_body(ESTEP_ARGS); }                      \
        }                                                                                         \
    }
#define ESTEP_PARAMS const void *Xv, int xf32, const double *w, Py_ssize_t n, Py_ssize_t D, Py_ssize_t K, \
    const double *mu, const double *U, const double *pi, int mode, double *nk, double *s1,              \
    double *s2, double *work, double *loglik_out, double *sum_w_out, double *logmax_out

#define ESTEP_DISPATCH                                                                            \
    {                                                                                             \
        if (mode == 0)                                                                            \
            ESTEP_CASES(0)                                                                        \
        else if (mode == 1)                                                                       \
            ESTEP_CASES(1)                                                                        \
        else                                                                                      \
            ESTEP_CASES(2)                                                                        \
    }

static int estep_generic(ESTEP_PARAMS) ESTEP_DISPATCH

#ifdef EMIX_X86_DISPATCH
__attribute__((target("avx2,fma"))) static int estep_avx2(ESTEP_PARAMS) ESTEP_DISPATCH
#endif

/* The E-step (estep_body) in the variant the CPU runs fastest. Xv: float64
 * rows, or float32 ones when xf32. Returns the status (0 done, 1 far row or
 * NaN term). work holds ESTEP_WORK(K, D) doubles. sum_w is the sum of the
 * weights (n without weights); logmax (if not NULL) sum_n w_n log max_k r_nk. */
static int estep_core(ESTEP_PARAMS)
{
#ifdef EMIX_X86_DISPATCH
    if (have_avx2_fma())
        return estep_avx2(Xv, xf32, w, n, D, K, mu, U, pi, mode, nk, s1, s2, work, loglik_out, sum_w_out,
                          logmax_out);
#endif
    return estep_generic(Xv, xf32, w, n, D, K, mu, U, pi, mode, nk, s1, s2, work, loglik_out, sum_w_out,
                         logmax_out);
}

/* estep(X, w, means, U, weights, nk, s1, s2, n, D, K, mode[, xf32]) -> (loglik, sum_w, status, logmax)
 *   mode 0: U is (K, D, D) upper triangular, s2 is (K, D, D)
 *   mode 1: U is (K, D, D) diagonal matrices, s2 is (K, D)
 *   mode 2: U is (K, D) (diagonal factors), s2 is (K, D)
 *   X: (n, D) float64, or float32 with xf32; w: None or (n,) float64
 *   status 0: done; 1: a far row or a NaN term (outputs undefined: the caller
 *   runs the general E-step instead). */
static PyObject *estep(PyObject *self, PyObject *args)
{
    Py_buffer bx, bm, bu, bp, bnk, bs1, bs2, bw;
    PyObject *wobj;
    Py_ssize_t n, D, K;
    int mode, xf32 = 0;
    int have_w = 0;
    if (!PyArg_ParseTuple(args, "y*Oy*y*y*w*w*w*nnni|p", &bx, &wobj, &bm, &bu, &bp, &bnk, &bs1, &bs2,
                          &n, &D, &K, &mode, &xf32))
        return NULL;
    PyObject *result = NULL;
    double *work = NULL;
    if (wobj != Py_None) {
        if (PyObject_GetBuffer(wobj, &bw, PyBUF_SIMPLE) < 0)
            goto release;
        have_w = 1;
    }
    if (n < 0 || D < 1 || K < 1 || mode < 0 || mode > 2) {
        PyErr_SetString(PyExc_ValueError, "estep: bad shape or mode");
        goto release;
    }
    Py_ssize_t ulen = (mode == 2) ? K * D : K * D * D;
    Py_ssize_t s2len = (mode == 0) ? K * D * D : K * D;
    if (xf32 && bx.len != n * D * (Py_ssize_t)sizeof(float)) {
        PyErr_Format(PyExc_ValueError, "X holds %zd bytes; expected %zd float32 values", bx.len, n * D);
        goto release;
    }
    if ((!xf32 && check_len(&bx, n * D, "X")) || check_len(&bm, K * D, "means") || check_len(&bu, ulen, "U")
        || check_len(&bp, K, "weights") || check_len(&bnk, K, "nk") || check_len(&bs1, K * D, "s1")
        || check_len(&bs2, s2len, "s2") || (have_w && check_len(&bw, n, "w")))
        goto release;

    const void *X = bx.buf;
    const double *mu = (const double *)bm.buf;
    const double *U = (const double *)bu.buf, *pi = (const double *)bp.buf;
    const double *w = have_w ? (const double *)bw.buf : NULL;
    double *nk = (double *)bnk.buf, *s1 = (double *)bs1.buf, *s2 = (double *)bs2.buf;
    double loglik = 0.0, sum_w = 0.0, logmax = 0.0;
    int status = 0;

    Py_BEGIN_ALLOW_THREADS
    work = (double *)malloc(sizeof(double) * (size_t)ESTEP_WORK(K, D));
    if (work != NULL)
        status = estep_core(X, xf32, w, n, D, K, mu, U, pi, mode, nk, s1, s2, work, &loglik, &sum_w, &logmax);
    Py_END_ALLOW_THREADS
    if (work == NULL) {
        PyErr_NoMemory();
        goto release;
    }
    result = Py_BuildValue("ddid", loglik, sum_w, status, logmax);

release:
    free(work);
    if (have_w)
        PyBuffer_Release(&bw);
    PyBuffer_Release(&bx);
    PyBuffer_Release(&bm);
    PyBuffer_Release(&bu);
    PyBuffer_Release(&bp);
    PyBuffer_Release(&bnk);
    PyBuffer_Release(&bs1);
    PyBuffer_Release(&bs2);
    return result;
}

/* The factorization proper of prec_chol below; L: D * D doubles of work.
 * Returns the first failing component or -1. */
static Py_ssize_t prec_chol_core(const double *C, double *O, Py_ssize_t K, Py_ssize_t D, int diag,
                                 double *L)
{
    Py_ssize_t bad = -1;
    {
        Py_ssize_t k, i, j, l;
        memset(O, 0, sizeof(double) * (size_t)(K * D * D));
        for (k = 0; k < K && bad < 0; k++) {
            const double *Ck = C + k * D * D;
            double *Uk = O + k * D * D;
            if (diag) {
                for (j = 0; j < D; j++) {
                    double v = Ck[j * D + j];
                    if (!(v > 0.0) || !isfinite(v)) {
                        bad = k;
                        break;
                    }
                    Uk[j * D + j] = 1.0 / sqrt(v);
                }
                continue;
            }
            for (i = 0; i < D * D; i++)
                if (!isfinite(Ck[i])) {
                    bad = k;
                    break;
                }
            if (bad >= 0)
                break;
            /* lower Cholesky factor, reading the lower triangle of Sigma_k */
            for (i = 0; i < D; i++) {
                for (j = 0; j <= i; j++) {
                    double s = Ck[i * D + j];
                    for (l = 0; l < j; l++)
                        s -= L[i * D + l] * L[j * D + l];
                    if (i == j) {
                        if (!(s > 0.0)) {
                            bad = k;
                            break;
                        }
                        L[i * D + i] = sqrt(s);
                    } else {
                        L[i * D + j] = s / L[j * D + j];
                    }
                }
                if (bad >= 0)
                    break;
            }
            if (bad >= 0)
                break;
            /* M = L^-1 (lower) column by column; U = M^T, so U[j][i] = M[i][j] */
            for (j = 0; j < D; j++) {
                for (i = j; i < D; i++) {
                    double s = (i == j) ? 1.0 : 0.0;
                    for (l = j; l < i; l++)
                        s -= L[i * D + l] * Uk[j * D + l]; /* M[l][j] = Uk[j][l] */
                    Uk[j * D + i] = s / L[i * D + i];
                }
            }
        }
        }
    return bad;
}

/* prec_chol(cov, out, K, D, diag) -> first failing component or -1.
 * For each covariance Sigma_k (K x D x D, C order): the Cholesky factor
 * Sigma_k = L_k L_k^T (Cholesky-Banachiewicz), then U_k = L_k^-T (forward
 * substitution for L_k^-1), upper triangular with U_k U_k^T = Sigma_k^-1:
 * the precision factor of scikit-learn's convention. With diag != 0 only the
 * diagonal is read and U_k = diag(1 / sqrt(Sigma_k,jj)). A component whose
 * matrix is not finite or not positive definite stops the loop; its index is
 * returned (the caller raises). */
static PyObject *prec_chol(PyObject *self, PyObject *args)
{
    Py_buffer bc, bo;
    Py_ssize_t K, D;
    int diag;
    if (!PyArg_ParseTuple(args, "y*w*nni", &bc, &bo, &K, &D, &diag))
        return NULL;
    PyObject *result = NULL;
    double *L = NULL;
    Py_ssize_t bad = -1;
    if (K < 1 || D < 1) {
        PyErr_SetString(PyExc_ValueError, "prec_chol: bad shape");
        goto release;
    }
    if (check_len(&bc, K * D * D, "cov") || check_len(&bo, K * D * D, "out"))
        goto release;
    const double *C = (const double *)bc.buf;
    double *O = (double *)bo.buf;
    Py_BEGIN_ALLOW_THREADS
    L = (double *)malloc(sizeof(double) * (size_t)(D * D));
    if (L != NULL)
        bad = prec_chol_core(C, O, K, D, diag, L);
    Py_END_ALLOW_THREADS
    if (L == NULL) {
        PyErr_NoMemory();
        goto release;
    }
    result = PyLong_FromSsize_t(bad);
release:
    free(L);
    PyBuffer_Release(&bc);
    PyBuffer_Release(&bo);
    return result;
}

/* ------------------------------------------------------------------------
 * The whole EM loop of a small fit in one call: em_loop (see
 * emix/core/small.py: em_loop, which owns the Python side and the fallbacks).
 *
 * Each iteration is the E-step above and the M-step of one covariance model,
 * written from the same formulas as the numpy M-steps (emix/families/
 * gaussian/full.py and the mclust package there, which cite Celeux & Govaert 1995,
 * Banfield & Raftery 1993, Browne & McNicholas 2014), with the same inner
 * iterations, tolerances and starts, so that a fit takes the same path as
 * the numpy loop up to rounding. Symmetric eigen-decompositions are LAPACK's
 * dsyev, taken from scipy's cython_lapack capsule table (no link step).
 * ------------------------------------------------------------------------ */

typedef void (*dsyev_fn)(char *, char *, int *, double *, int *, double *, double *, int *, int *);
static dsyev_fn dsyev_ptr = NULL;

/* The function ``name`` of scipy.linalg.cython_lapack's capsule table (with
 * the GIL held), or NULL with an exception set. */
static void *lapack_fn(const char *name)
{
    PyObject *mod = PyImport_ImportModule("scipy.linalg.cython_lapack");
    if (mod == NULL)
        return NULL;
    PyObject *capi = PyObject_GetAttrString(mod, "__pyx_capi__");
    Py_DECREF(mod);
    if (capi == NULL)
        return NULL;
    PyObject *cap = PyDict_GetItemString(capi, name); /* borrowed */
    void *ptr = NULL;
    if (cap == NULL)
        PyErr_Format(PyExc_ImportError, "scipy.linalg.cython_lapack has no %s", name);
    else
        ptr = PyCapsule_GetPointer(cap, PyCapsule_GetName(cap));
    Py_DECREF(capi);
    return ptr;
}

/* dsyev, loaded once; 0 or -1 with an exception set */
static int load_lapack(void)
{
    if (dsyev_ptr == NULL)
        dsyev_ptr = (dsyev_fn)lapack_fn("dsyev");
    return dsyev_ptr == NULL ? -1 : 0;
}

enum {
    M_EII = 1, M_VII, M_EEI, M_VEI, M_EVI, M_VVI, M_EEE, M_VEE, M_EVE, M_VVE, M_EEV, M_VEV, M_EVV,
    M_VVV, M_FULL, M_LAST
};
#define IS_DIAG_MODEL(m) ((m) <= M_VVI)
#define INNER_TOL 1.4901161193847656e-08 /* sqrt(eps): mclust's emControl()$tol[2] */
#define INNER_MAX_ITER 500
#define EPS_NK (10.0 * 2.220446049250313e-16)

/* em_loop status */
enum { S_CONVERGED = 0, S_MAX_ITER, S_FALLBACK, S_DEGENERATE, S_MCLUST_FAIL };
/* mclust failure reasons (bad_k of S_MCLUST_FAIL) */
enum { F_EMPTY = 1, F_SINGULAR, F_RCOND, F_LOGLIK, F_MEANS };

typedef struct {
    Py_ssize_t n, D, K;
    int lwork;
    double *nk, *s1, *s2, *ework, *nke, *delta, *W, *w2, *evecs, *lwork_buf, *M, *E, *En,
        *Cv, *Cn, *B, *L, *tmp, *lam, *A, *jac;
} Work;

static void work_free(Work *ws) { free(ws->nk); }

/* one allocation for everything; 0 or -1 (no memory) */
static int work_alloc(Work *ws, Py_ssize_t n, Py_ssize_t D, Py_ssize_t K)
{
    ws->n = n;
    ws->D = D;
    ws->K = K;
    ws->lwork = (int)(3 * D + 64);
    Py_ssize_t KD = K * D, KDD = K * D * D, DD = D * D;
    size_t total = (size_t)(K + KD + KDD + ESTEP_WORK(K, D) + K + KD + KDD + KD + KDD + ws->lwork
                            + D * DD + DD + DD + KD + KD + KD + DD + DD + K + D + DD);
    double *p = (double *)malloc(sizeof(double) * total);
    if (p == NULL)
        return -1;
    ws->nk = p; p += K;
    ws->s1 = p; p += KD;
    ws->s2 = p; p += KDD;
    ws->ework = p; p += ESTEP_WORK(K, D);
    ws->nke = p; p += K;
    ws->delta = p; p += KD;
    ws->W = p; p += KDD;
    ws->w2 = p; p += KD;
    ws->evecs = p; p += KDD;
    ws->lwork_buf = p; p += ws->lwork;
    ws->M = p; p += D * DD;
    ws->E = p; p += DD;
    ws->En = p; p += DD;
    ws->Cv = p; p += KD;
    ws->Cn = p; p += KD;
    ws->B = p; p += KD;
    ws->L = p; p += DD;
    ws->tmp = p; p += DD;
    ws->lam = p; p += K;
    ws->A = p; p += D;
    ws->jac = p; p += DD;
    return 0;
}

/* Small symmetric eigenproblems and polar factors by Jacobi rotations. For the
 * 2- to 12-dimensional matrices of these M-steps, a LAPACK call through
 * scipy's OpenBLAS costs 20-35 us (measured here: dsyev and dgesvd on 6 x 6,
 * one thread), most of it outside the arithmetic; Jacobi's methods need
 * about a microsecond and are at least as accurate (Demmel & Veselic 1992,
 * "Jacobi's method is more accurate than QR"). LAPACK remains the path above
 * JACOBI_MAX and wherever Jacobi does not converge. */
#define JACOBI_MAX 12
#define JACOBI_SWEEPS 60

/* the (c, s) of the rotation that zeroes a_pq of a symmetric 2 x 2 block
 * (Golub & Van Loan, Matrix Computations, 4th ed., algorithm 8.5.1) */
static void jacobi_cs(double app, double aqq, double apq, double *c, double *s)
{
    double tau = (aqq - app) / (2.0 * apq);
    double t = (tau >= 0.0 ? 1.0 : -1.0) / (fabs(tau) + sqrt(1.0 + tau * tau));
    *c = 1.0 / sqrt(1.0 + t * t);
    *s = t * *c;
}

/* eigenvalues (ascending) and eigenvectors (rows of vecs, as sym_eig) of the
 * symmetric D x D S by the cyclic Jacobi method (ibid., algorithm 8.5.3);
 * A: D * D of work. 0, or -1 where it did not converge. */
static int jacobi_eig(const double *S, Py_ssize_t D, double *vals, double *vecs, double *A)
{
    Py_ssize_t p, q, r, sweep;
    const double tol2 = ((double)D * 2.220446049250313e-16) * ((double)D * 2.220446049250313e-16);
    double *V = vecs; /* V[r * D + m]: component r of eigenvector m, transposed at the end */
    memcpy(A, S, sizeof(double) * (size_t)(D * D));
    for (p = 0; p < D * D; p++)
        V[p] = 0.0;
    for (p = 0; p < D; p++)
        V[p * D + p] = 1.0;
    for (sweep = 0; sweep < JACOBI_SWEEPS; sweep++) {
        double off = 0.0, tot = 0.0;
        for (p = 0; p < D; p++)
            for (q = 0; q < D; q++) {
                double a2 = A[p * D + q] * A[p * D + q];
                tot += a2;
                if (p != q)
                    off += a2;
            }
        if (!(off > tol2 * tot)) /* off-diagonal mass below (D eps ||A||)^2; NaN: stop */
            break;
        for (p = 0; p < D - 1; p++)
            for (q = p + 1; q < D; q++) {
                double apq = A[p * D + q], c, s;
                if (apq == 0.0)
                    continue;
                jacobi_cs(A[p * D + p], A[q * D + q], apq, &c, &s);
                for (r = 0; r < D; r++) { /* A J */
                    double arp = A[r * D + p], arq = A[r * D + q];
                    A[r * D + p] = c * arp - s * arq;
                    A[r * D + q] = s * arp + c * arq;
                }
                for (r = 0; r < D; r++) { /* J^T A */
                    double apr = A[p * D + r], aqr = A[q * D + r];
                    A[p * D + r] = c * apr - s * aqr;
                    A[q * D + r] = s * apr + c * aqr;
                }
                for (r = 0; r < D; r++) { /* V J */
                    double vrp = V[r * D + p], vrq = V[r * D + q];
                    V[r * D + p] = c * vrp - s * vrq;
                    V[r * D + q] = s * vrp + c * vrq;
                }
            }
    }
    if (sweep == JACOBI_SWEEPS)
        return -1;
    for (p = 0; p < D; p++) {
        vals[p] = A[p * D + p];
        if (!isfinite(vals[p]))
            return -1;
    }
    for (p = 0; p < D; p++) /* eigenvectors as rows */
        for (q = p + 1; q < D; q++) {
            double t = V[p * D + q];
            V[p * D + q] = V[q * D + p];
            V[q * D + p] = t;
        }
    for (p = 1; p < D; p++) { /* ascending, vectors along (insertion sort) */
        for (q = p; q > 0 && vals[q - 1] > vals[q]; q--) {
            double t = vals[q];
            vals[q] = vals[q - 1];
            vals[q - 1] = t;
            for (r = 0; r < D; r++) {
                t = V[q * D + r];
                V[q * D + r] = V[(q - 1) * D + r];
                V[(q - 1) * D + r] = t;
            }
        }
    }
    return 0;
}

/* the orthogonal polar factor Q = U V^T of the (row-major) d x d F = U S V^T
 * by one-sided Jacobi (Hestenes 1958: rotate column pairs of G = F V until
 * they are orthogonal, then U = G S^-1); G: d * d of work; V: d * d, with
 * warm != 0 the V of a nearby F to start from (the factor is unique, so only
 * the number of sweeps depends on it), the new V out. 0, or -1 where
 * it did not converge or F is (numerically) singular, where the polar factor
 * is not unique (the caller then asks LAPACK). */
/* Column p of the d x d matrix G (row-major) replaced by a unit vector
 * orthogonal to its other columns, which are orthonormal: the coordinate
 * axis least in their span, orthogonalized against them twice (classical
 * Gram-Schmidt twice is orthogonal to rounding: Giraud et al. 2005). A polar
 * factor of a matrix of rank d - 1 is unique up to the sign of this column's
 * term; in mclust's MM step the null vector is a coordinate axis j (the zero
 * column of F), so either sign flips column j of the orientation, which
 * leaves every covariance and shape unchanged. 0 done, -1 degenerate. */
EMIX_ALWAYS_INLINE int complete_column(double *G, Py_ssize_t d, Py_ssize_t p)
{
    Py_ssize_t i, q, best = 0, pass;
    double least = INFINITY;
    for (i = 0; i < d; i++) { /* the axis e_i with the least squared projection on the others */
        double proj = 0.0;
        for (q = 0; q < d; q++)
            if (q != p)
                proj += G[i * d + q] * G[i * d + q];
        if (proj < least) {
            least = proj;
            best = i;
        }
    }
    for (i = 0; i < d; i++)
        G[i * d + p] = (i == best) ? 1.0 : 0.0;
    for (pass = 0; pass < 2; pass++)
        for (q = 0; q < d; q++) {
            if (q == p)
                continue;
            double dot = 0.0;
            for (i = 0; i < d; i++)
                dot += G[i * d + q] * G[i * d + p];
            for (i = 0; i < d; i++)
                G[i * d + p] -= dot * G[i * d + q];
        }
    double n2 = 0.0;
    for (i = 0; i < d; i++)
        n2 += G[i * d + p] * G[i * d + p];
    if (!(n2 > 0.5 / (double)d)) /* the least projection leaves >= 1/d; else the others are not orthonormal */
        return -1;
    double inv = 1.0 / sqrt(n2);
    for (i = 0; i < d; i++)
        G[i * d + p] *= inv;
    return 0;
}

EMIX_ALWAYS_INLINE int jacobi_polar(const double *F, Py_ssize_t d, double *Q, double *G, double *V, int warm)
{
    Py_ssize_t p, q, i, sweep;
    const double tol = sqrt((double)d) * 2.220446049250313e-16; /* LAPACK dgesvj's sqrt(m) eps */
    if (warm) { /* start from the previous right singular vectors V: G = F V */
        for (i = 0; i < d; i++)
            for (p = 0; p < d; p++) {
                double acc = 0.0;
                for (q = 0; q < d; q++)
                    acc += F[i * d + q] * V[q * d + p];
                G[i * d + p] = acc;
            }
    } else {
        memcpy(G, F, sizeof(double) * (size_t)(d * d));
        for (p = 0; p < d * d; p++)
            V[p] = 0.0;
        for (p = 0; p < d; p++)
            V[p * d + p] = 1.0;
    }
    for (sweep = 0; sweep < JACOBI_SWEEPS; sweep++) {
        int rotated = 0;
        for (p = 0; p < d - 1; p++)
            for (q = p + 1; q < d; q++) {
                double alpha = 0.0, beta = 0.0, gamma = 0.0, c, s;
                for (i = 0; i < d; i++) {
                    double gp = G[i * d + p], gq = G[i * d + q];
                    alpha += gp * gp;
                    beta += gq * gq;
                    gamma += gp * gq;
                }
                if (!(fabs(gamma) > tol * sqrt(alpha * beta))) /* orthogonal to rounding */
                    continue;
                rotated = 1;
                jacobi_cs(alpha, beta, gamma, &c, &s);
                for (i = 0; i < d; i++) {
                    double gp = G[i * d + p], gq = G[i * d + q];
                    G[i * d + p] = c * gp - s * gq;
                    G[i * d + q] = s * gp + c * gq;
                    double vp = V[i * d + p], vq = V[i * d + q];
                    V[i * d + p] = c * vp - s * vq;
                    V[i * d + q] = s * vp + c * vq;
                }
            }
        if (!rotated)
            break;
    }
    if (sweep == JACOBI_SWEEPS)
        return -1;
    double smax = 0.0;
    for (p = 0; p < d; p++) { /* singular values: the column norms, kept in G's last use */
        double n2 = 0.0;
        for (i = 0; i < d; i++)
            n2 += G[i * d + p] * G[i * d + p];
        Q[p] = sqrt(n2); /* Q's first row as scratch for the norms */
        smax = fmax(smax, Q[p]);
    }
    Py_ssize_t null = -1;
    for (p = 0; p < d; p++) {
        if (!isfinite(Q[p]) || !(smax > 0.0))
            return -1;
        if (!(Q[p] > 1e-12 * smax)) { /* a zero singular value: one is completed below */
            if (null >= 0)
                return -1;
            null = p;
            continue;
        }
        for (i = 0; i < d; i++)
            G[i * d + p] /= Q[p];
    }
    if (null >= 0 && complete_column(G, d, null) != 0)
        return -1;
    for (i = 0; i < d; i++) /* Q = U V^T */
        for (q = 0; q < d; q++) {
            double acc = 0.0;
            for (p = 0; p < d; p++)
                acc += G[i * d + p] * V[q * d + p];
            Q[i * d + q] = acc;
        }
    return 0;
}

/* eigenvalues (ascending) and, with want != 0, eigenvectors of the symmetric
 * D x D matrix S: vecs[i * D + j] is component j of eigenvector i. LAPACK's info. */
static int sym_eig(Work *ws, const double *S, Py_ssize_t D, double *vals, double *vecs, int want)
{
    if (D <= JACOBI_MAX && jacobi_eig(S, D, vals, vecs, ws->jac) == 0)
        return 0;
    char jobz = want ? 'V' : 'N', uplo = 'L';
    int n = (int)D, lda = (int)D, info = 0, lwork = ws->lwork;
    memcpy(vecs, S, sizeof(double) * (size_t)(D * D));
    dsyev_ptr(&jobz, &uplo, &n, vecs, &lda, vals, ws->lwork_buf, &lwork, &info);
    return info;
}

/* lower Cholesky factor of the symmetric S into L and log|S|; -1 if not positive definite */
static int chol_logdet(const double *S, Py_ssize_t D, double *L, double *logdet)
{
    Py_ssize_t i, j, l;
    double ld = 0.0;
    for (i = 0; i < D; i++)
        for (j = 0; j <= i; j++) {
            double s = S[i * D + j];
            for (l = 0; l < j; l++)
                s -= L[i * D + l] * L[j * D + l];
            if (i == j) {
                if (!(s > 0.0) || !isfinite(s))
                    return -1;
                L[i * D + i] = sqrt(s);
                ld += log(L[i * D + i]);
            } else {
                L[i * D + j] = s / L[j * D + j];
            }
        }
    *logdet = 2.0 * ld;
    return 0;
}

/* S^-1 from its lower Cholesky factor L (S = L L^T): S^-1 = L^-T L^-1; tmp: D * D */
static void chol_inverse(const double *L, Py_ssize_t D, double *out, double *tmp)
{
    Py_ssize_t i, j, l;
    for (j = 0; j < D; j++) /* tmp = L^-1 (lower), column j by forward substitution */
        for (i = 0; i < D; i++) {
            if (i < j) {
                tmp[i * D + j] = 0.0;
                continue;
            }
            double s = (i == j) ? 1.0 : 0.0;
            for (l = j; l < i; l++)
                s -= L[i * D + l] * tmp[l * D + j];
            tmp[i * D + j] = s / L[i * D + i];
        }
    for (i = 0; i < D; i++)
        for (j = i; j < D; j++) {
            double s = 0.0;
            for (l = j; l < D; l++)
                s += tmp[l * D + i] * tmp[l * D + j];
            out[i * D + j] = s;
            out[j * D + i] = s;
        }
}

static double relative_change(double old, double new_)
{
    return fabs(new_ - old) / fmax(fabs(new_), 1e-300);
}

/* cov_k = sum_m a_km v_m v_m^T for vectors as rows of V (m-th used with a_km:
 * vrow(m) = V + row(m) * D), written symmetric. desc: pair a_k's m-th entry
 * with the m-th largest (V ascending: row D - 1 - m). */
static void compose(const double *V, const double *a, Py_ssize_t D, double *cov, int desc)
{
    Py_ssize_t p, q, m;
    for (p = 0; p < D; p++)
        for (q = p; q < D; q++) {
            double s = 0.0;
            for (m = 0; m < D; m++) {
                const double *v = V + (desc ? (D - 1 - m) : m) * D;
                s += v[p] * a[m] * v[q];
            }
            cov[p * D + q] = s;
            cov[q * D + p] = s;
        }
}

/* VEI / VEV's inner loop on the (K, D) values w: lam (K), A (D) */
static void vei_loop(const double *w, const double *nk, Py_ssize_t K, Py_ssize_t D, double *lam,
                     double *A)
{
    Py_ssize_t k, j;
    int it;
    double obj = INFINITY;
    for (k = 0; k < K; k++) {
        double s = 0.0;
        for (j = 0; j < D; j++)
            s += w[k * D + j];
        lam[k] = s / (nk[k] * (double)D);
    }
    for (it = 0; it < INNER_MAX_ITER; it++) {
        double ml = 0.0;
        for (j = 0; j < D; j++) {
            double a = 0.0;
            for (k = 0; k < K; k++)
                a += w[k * D + j] / lam[k];
            A[j] = a;
            ml += log(a);
        }
        double g = exp(ml / (double)D);
        for (j = 0; j < D; j++)
            A[j] /= g;
        double new_ = 0.0;
        for (k = 0; k < K; k++) {
            double s = 0.0;
            for (j = 0; j < D; j++)
                s += w[k * D + j] / A[j];
            lam[k] = s / (nk[k] * (double)D);
            new_ += nk[k] * log(lam[k]);
        }
        new_ *= (double)D;
        if (relative_change(obj, new_) < INNER_TOL)
            break;
        obj = new_;
    }
}

/* B_km = e_m^T W_k e_m, C = the conditional variances, and -2 Q (EVE: eve != 0; VVE) */
static double orient_evaluate(const Work *ws, const double *E, double *C, double ntot, int eve)
{
    Py_ssize_t K = ws->K, D = ws->D, k, m, p, q;
    const double *W = ws->W, *nk = ws->nke;
    double *B = ws->B, obj = 0.0, gsum = 0.0;
    for (k = 0; k < K; k++) {
        double lg = 0.0;
        for (m = 0; m < D; m++) {
            const double *e = E + m * D, *Wk = W + k * D * D;
            double s = 0.0;
            for (p = 0; p < D; p++) {
                double t = 0.0;
                for (q = 0; q < D; q++)
                    t += Wk[p * D + q] * e[q];
                s += e[p] * t;
            }
            B[k * D + m] = s;
            lg += log(s);
        }
        if (eve) {
            ws->lam[k] = exp(lg / (double)D); /* g_k = |B_k|^(1/D) */
            gsum += ws->lam[k];
        }
    }
    for (k = 0; k < K; k++) {
        double f = eve ? gsum / ntot / ws->lam[k] : 1.0 / nk[k];
        double lc = 0.0, r = 0.0;
        for (m = 0; m < D; m++) {
            C[k * D + m] = B[k * D + m] * f;
            lc += log(C[k * D + m]);
            r += B[k * D + m] / C[k * D + m];
        }
        obj += nk[k] * lc + r;
    }
    return obj;
}

/* one sweep of exact plane rotations of the rows of E (the orientation's
 * columns), pairs in the circle method's rounds (see orientation_sweep in
 * mclust/_eigen.py for the formulas) */
static void orient_sweep(const Work *ws, double *E, const double *C)
{
    Py_ssize_t K = ws->K, D = ws->D, k, m, p, q, r, t;
    double *M = ws->M;
    for (m = 0; m < D; m++) { /* M_m = sum_k W_k / C_km */
        double *Mm = M + m * D * D;
        for (p = 0; p < D * D; p++)
            Mm[p] = 0.0;
        for (k = 0; k < K; k++) {
            double f = 1.0 / C[k * D + m];
            const double *Wk = ws->W + k * D * D;
            for (p = 0; p < D * D; p++)
                Mm[p] += f * Wk[p];
        }
    }
    Py_ssize_t mm = D + (D % 2);
    int ring[64];
    for (t = 0; t < mm; t++)
        ring[t] = (int)t;
    for (r = 0; r < mm - 1; r++) {
        for (t = 0; t < mm / 2; t++) {
            Py_ssize_t a = ring[t], b = ring[mm - 1 - t];
            Py_ssize_t i = a < b ? a : b, j = a < b ? b : a;
            if (j >= D)
                continue;
            double *y0 = E + i * D, *y1 = E + j * D, G[8];
            const double *Mp[2] = {M + i * D * D, M + j * D * D};
            const double *ys[2] = {y0, y1};
            int ai, bi, ci;
            for (ai = 0; ai < 2; ai++)
                for (bi = 0; bi < 2; bi++)
                    for (ci = 0; ci < 2; ci++) {
                        double s = 0.0;
                        for (p = 0; p < D; p++) {
                            double u = 0.0;
                            for (q = 0; q < D; q++)
                                u += Mp[ai][p * D + q] * ys[ci][q];
                            s += ys[bi][p] * u;
                        }
                        G[ai * 4 + bi * 2 + ci] = s;
                    }
            double nalpha = 0.5 * (-G[0] + G[3] - G[7] + G[4]);
            double nbeta = -G[1] + G[5];
            double th = (nalpha == 0.0 && nbeta == 0.0) ? 0.0 : 0.5 * atan2(nbeta, nalpha);
            double c = cos(th), s = sin(th);
            for (p = 0; p < D; p++) {
                double u0 = y0[p], u1 = y1[p];
                y0[p] = c * u0 + s * u1;
                y1[p] = -s * u0 + c * u1;
            }
        }
        int first = ring[0], last = ring[mm - 1];
        for (t = mm - 1; t > 1; t--)
            ring[t] = ring[t - 1];
        ring[0] = first;
        ring[1] = last;
    }
}

/* EVE / VVE: the covariances from W (in ws->W), warm-started at the orientation
 * of prev (K, D, D) where it has one; 0 or 1 (LAPACK failed: redo in numpy) */
static int common_orientation_c(Work *ws, const double *prev, double *cov, int eve)
{
    Py_ssize_t K = ws->K, D = ws->D, k, p, q;
    double ntot = 0.0;
    for (k = 0; k < K; k++)
        ntot += ws->nke[k];
    int warm = 0, max_cycles = INNER_MAX_ITER;
    double *S = ws->tmp, *E = ws->E;
    /* orientation_of(prev): eigenvectors of sum_k (k + 1) Sigma_k / tr Sigma_k, checked */
    int ok = prev != NULL;
    for (p = 0; p < K * D * D && ok; p++)
        ok = isfinite(prev[p]);
    if (ok) {
        for (p = 0; p < D * D; p++)
            S[p] = 0.0;
        for (k = 0; k < K && ok; k++) {
            const double *Pk = prev + k * D * D;
            double tr = 0.0;
            for (p = 0; p < D; p++)
                tr += Pk[p * D + p];
            if (!(tr > 0.0)) {
                ok = 0;
                break;
            }
            for (p = 0; p < D * D; p++)
                S[p] += (double)(k + 1) / tr * Pk[p];
        }
    }
    if (ok) {
        for (p = 0; p < D; p++)
            for (q = p + 1; q < D; q++)
                S[p * D + q] = S[q * D + p] = 0.5 * (S[p * D + q] + S[q * D + p]);
        if (sym_eig(ws, S, D, ws->A, E, 1) != 0)
            return 1;
        for (k = 0; k < K && ok; k++) { /* E must diagonalize every Sigma_k */
            const double *Pk = prev + k * D * D;
            double off = 0.0, dmax = 0.0;
            for (p = 0; p < D; p++)
                for (q = 0; q < D; q++) {
                    double s = 0.0, u;
                    Py_ssize_t a, b;
                    for (a = 0; a < D; a++) {
                        u = 0.0;
                        for (b = 0; b < D; b++)
                            u += Pk[a * D + b] * E[q * D + b];
                        s += E[p * D + a] * u;
                    }
                    if (p == q)
                        dmax = fmax(dmax, fabs(s));
                    else
                        off = fmax(off, fabs(s));
                }
            ok = off <= INNER_TOL * dmax;
        }
        if (ok) {
            warm = 1;
            max_cycles = 1;
        }
    }
    if (!warm) { /* cold start: the eigenvectors of sum_k W_k */
        for (p = 0; p < D * D; p++) {
            double s = 0.0;
            for (k = 0; k < K; k++)
                s += ws->W[k * D * D + p];
            S[p] = s;
        }
        if (sym_eig(ws, S, D, ws->A, E, 1) != 0)
            return 1;
    }
    double *C = ws->Cv, *Cn = ws->Cn, *En = ws->En;
    double obj = orient_evaluate(ws, E, C, ntot, eve);
    int cyc;
    for (cyc = 0; cyc < max_cycles; cyc++) {
        memcpy(En, E, sizeof(double) * (size_t)(D * D));
        orient_sweep(ws, En, C);
        double new_ = orient_evaluate(ws, En, Cn, ntot, eve);
        if (!(new_ <= obj))
            break;
        memcpy(E, En, sizeof(double) * (size_t)(D * D));
        memcpy(C, Cn, sizeof(double) * (size_t)(K * D));
        double change = obj - new_;
        obj = new_;
        if (change <= INNER_TOL * (1.0 + fabs(obj)))
            break;
    }
    for (k = 0; k < K; k++) /* D diag(C_k) D^T with D's columns the rows of E */
        compose(E, C + k * D, D, cov + k * D * D, 0);
    return 0;
}

/* The M-step from ws->nk/s1/s2 (shifted at mu_old): weights pi, means mu and
 * covariances cov (K, D, D); prev: the covariances entering the iteration
 * (EVE/VVE start there; may alias cov). 0 done; 1 cannot be done here (a
 * factorization failed inside an iterative solve: the numpy M-step decides). */
static int mstep_core(Work *ws, int model, double reg, const double *mu_old, double *pi, double *mu,
                      double *cov, const double *prev)
{
    Py_ssize_t K = ws->K, D = ws->D, k, j, l, p;
    double *nk = ws->nke, *delta = ws->delta, tot = 0.0;
    for (k = 0; k < K; k++) {
        nk[k] = ws->nk[k] + EPS_NK;
        tot += nk[k];
    }
    for (k = 0; k < K; k++) {
        pi[k] = nk[k] / tot;
        for (j = 0; j < D; j++) {
            delta[k * D + j] = ws->s1[k * D + j] / nk[k];
            mu[k * D + j] = mu_old[k * D + j] + delta[k * D + j];
        }
    }
    if (IS_DIAG_MODEL(model)) {
        double *w = ws->w2, *var = ws->Cv;
        for (k = 0; k < K; k++)
            for (j = 0; j < D; j++) {
                double dj = delta[k * D + j];
                w[k * D + j] = ws->s2[k * D + j] - nk[k] * dj * dj + nk[k] * reg;
            }
        if (model == M_EII) {
            double s = 0.0;
            for (p = 0; p < K * D; p++)
                s += w[p];
            s /= tot * (double)D;
            for (p = 0; p < K * D; p++)
                var[p] = s;
        } else if (model == M_VII) {
            for (k = 0; k < K; k++) {
                double s = 0.0;
                for (j = 0; j < D; j++)
                    s += w[k * D + j];
                s /= nk[k] * (double)D;
                for (j = 0; j < D; j++)
                    var[k * D + j] = s;
            }
        } else if (model == M_EEI) {
            for (j = 0; j < D; j++) {
                double s = 0.0;
                for (k = 0; k < K; k++)
                    s += w[k * D + j];
                for (k = 0; k < K; k++)
                    var[k * D + j] = s / tot;
            }
        } else if (model == M_VVI) {
            for (k = 0; k < K; k++)
                for (j = 0; j < D; j++)
                    var[k * D + j] = w[k * D + j] / nk[k];
        } else if (model == M_EVI) {
            double lam = 0.0;
            for (k = 0; k < K; k++) {
                double lg = 0.0;
                for (j = 0; j < D; j++)
                    lg += log(w[k * D + j]);
                ws->lam[k] = exp(lg / (double)D);
                lam += ws->lam[k];
            }
            lam /= tot;
            for (k = 0; k < K; k++)
                for (j = 0; j < D; j++)
                    var[k * D + j] = lam * (w[k * D + j] / ws->lam[k]);
        } else { /* M_VEI */
            vei_loop(w, nk, K, D, ws->lam, ws->A);
            for (k = 0; k < K; k++)
                for (j = 0; j < D; j++)
                    var[k * D + j] = ws->lam[k] * ws->A[j];
        }
        memset(cov, 0, sizeof(double) * (size_t)(K * D * D));
        for (k = 0; k < K; k++)
            for (j = 0; j < D; j++)
                cov[k * D * D + j * D + j] = var[k * D + j];
        return 0;
    }
    double *W = ws->W;
    if (model == M_FULL) { /* scikit-learn's form: S2_k / n_k - delta delta^T + reg I */
        for (k = 0; k < K; k++)
            for (j = 0; j < D; j++)
                for (l = 0; l < D; l++) {
                    double v = ws->s2[k * D * D + j * D + l] / nk[k] - delta[k * D + j] * delta[k * D + l];
                    cov[k * D * D + j * D + l] = (j == l) ? v + reg : v;
                }
        return 0;
    }
    for (k = 0; k < K; k++) /* W_k + n_k reg I */
        for (j = 0; j < D; j++)
            for (l = 0; l < D; l++) {
                double v = ws->s2[k * D * D + j * D + l] - nk[k] * (delta[k * D + j] * delta[k * D + l]);
                W[k * D * D + j * D + l] = (j == l) ? v + nk[k] * reg : v;
            }
    if (model == M_VVV) {
        for (k = 0; k < K; k++)
            for (p = 0; p < D * D; p++)
                cov[k * D * D + p] = W[k * D * D + p] / nk[k];
    } else if (model == M_EEE) {
        for (p = 0; p < D * D; p++) {
            double s = 0.0;
            for (k = 0; k < K; k++)
                s += W[k * D * D + p];
            for (k = 0; k < K; k++)
                cov[k * D * D + p] = s / tot;
        }
    } else if (model == M_EVV) {
        double lam = 0.0, ld;
        for (k = 0; k < K; k++) {
            if (chol_logdet(W + k * D * D, D, ws->L, &ld) != 0)
                return 1;
            ws->lam[k] = exp(ld / (double)D);
            lam += ws->lam[k];
        }
        lam /= tot;
        for (k = 0; k < K; k++)
            for (p = 0; p < D * D; p++)
                cov[k * D * D + p] = (lam / ws->lam[k]) * W[k * D * D + p];
    } else if (model == M_EEV || model == M_VEV) {
        double *om = ws->w2; /* eigenvalues, descending, (K, D) */
        for (k = 0; k < K; k++) {
            if (sym_eig(ws, W + k * D * D, D, ws->A, ws->evecs + k * D * D, 1) != 0)
                return 1;
            for (j = 0; j < D; j++)
                om[k * D + j] = ws->A[D - 1 - j];
        }
        double *a = ws->Cv;
        if (model == M_EEV) {
            for (j = 0; j < D; j++) {
                double s = 0.0;
                for (k = 0; k < K; k++)
                    s += om[k * D + j];
                for (k = 0; k < K; k++)
                    a[k * D + j] = s / tot;
            }
        } else {
            vei_loop(om, nk, K, D, ws->lam, ws->A);
            for (k = 0; k < K; k++)
                for (j = 0; j < D; j++)
                    a[k * D + j] = ws->lam[k] * ws->A[j];
        }
        for (k = 0; k < K; k++)
            compose(ws->evecs + k * D * D, a + k * D, D, cov + k * D * D, 1);
    } else if (model == M_VEE) {
        double *Cm = ws->tmp, *Ci = ws->En, *lam = ws->lam, obj = INFINITY;
        int it;
        for (k = 0; k < K; k++) {
            double tr = 0.0;
            for (j = 0; j < D; j++)
                tr += W[k * D * D + j * D + j];
            lam[k] = tr / (nk[k] * (double)D);
        }
        for (it = 0; it < INNER_MAX_ITER; it++) {
            double ld;
            for (p = 0; p < D * D; p++) {
                double s = 0.0;
                for (k = 0; k < K; k++)
                    s += W[k * D * D + p] / lam[k];
                Cm[p] = s;
            }
            if (chol_logdet(Cm, D, ws->L, &ld) != 0)
                return 1;
            double g = exp(ld / (double)D);
            for (p = 0; p < D * D; p++)
                Cm[p] /= g;
            chol_inverse(ws->L, D, Ci, ws->E); /* (M)^-1; C^-1 = g M^-1 */
            double new_ = 0.0;
            for (k = 0; k < K; k++) {
                double s = 0.0;
                for (p = 0; p < D * D; p++)
                    s += W[k * D * D + p] * Ci[p]; /* both symmetric: tr(W_k Ci) */
                lam[k] = s * g / (nk[k] * (double)D);
                new_ += nk[k] * log(lam[k]);
            }
            new_ *= (double)D;
            if (relative_change(obj, new_) < INNER_TOL)
                break;
            obj = new_;
        }
        for (k = 0; k < K; k++)
            for (p = 0; p < D * D; p++)
                cov[k * D * D + p] = lam[k] * Cm[p];
    } else if (model == M_EVE || model == M_VVE) {
        return common_orientation_c(ws, prev, cov, model == M_EVE);
    }
    return 0;
}

/* mclust's singularity test: every covariance's smallest eigenvalue above
 * eps times its largest (and the largest positive); 1 passes, 0 fails, -1
 * LAPACK failed. U: the precision factors of cov (U U^T = cov^-1). The
 * eigenvalues are computed only where a bound cannot decide: lo >= 1 /
 * tr(cov^-1) = 1 / |U|_F^2 and hi <= tr(cov), so 1 / |U|_F^2 > eps tr(cov)
 * (with tr(cov) > 0) passes without them; the decision is the same. */
static int rcond_ok(Work *ws, int model, const double *cov, const double *U, double eps)
{
    Py_ssize_t K = ws->K, D = ws->D, k, j;
    for (k = 0; k < K; k++) {
        double lo = INFINITY, hi = -INFINITY;
        if (!(IS_DIAG_MODEL(model) || D == 1)) {
            double tr = 0.0, fro = 0.0;
            for (j = 0; j < D; j++)
                tr += cov[k * D * D + j * D + j];
            for (j = 0; j < D * D; j++)
                fro += U[k * D * D + j] * U[k * D * D + j];
            if (tr > 0.0 && isfinite(tr) && fro > 0.0 && 1.0 / fro > eps * tr)
                continue;
        }
        if (IS_DIAG_MODEL(model) || D == 1) {
            for (j = 0; j < D; j++) {
                double v = cov[k * D * D + j * D + j];
                lo = fmin(lo, v);
                hi = fmax(hi, v);
            }
        } else {
            if (sym_eig(ws, cov + k * D * D, D, ws->A, ws->tmp, 0) != 0)
                return -1;
            lo = ws->A[0];
            hi = ws->A[D - 1];
        }
        if (!(lo > eps * hi) || !(hi > 0.0))
            return 0;
    }
    return 1;
}

/* em_loop(X, w, weights, means, cov, U, history, n, D, K, model, rule, tol, reg, max_iter, eps, lb0)
 *   -> (status, n_iter, last, bad_k, bad_nk)
 * weights (K), means (K, D), cov and U (K, D, D): the starting parameters in,
 * the final ones out. history: max_iter float64 (the first n_iter filled).
 * rule 0 (emix's em.fit / core.loop.run_em): E-step, M-step, record the mean
 *   log-likelihood lb of the parameters entering the iteration, stop when
 *   |lb - previous| < tol (lb0 the previous bound of the first iteration).
 * rule 1 (mclust's me(), core.mclust_hc.mclust_em): E-step, record the total
 *   log-likelihood, stop before the M-step when |hold - L| / (1 + |L|) < tol
 *   (hold = lb0 first); M-steps checked as mclust does (empty component,
 *   singular covariance, reciprocal condition <= eps).
 * status: S_CONVERGED, S_MAX_ITER; S_FALLBACK: iteration n_iter + 1 cannot be
 * done here (a far row, a NaN term, a failed factorization inside an
 * iterative M-step): the parameters are those entering it and last is the
 * bound/hold before it, for the numpy loop to go on; S_DEGENERATE (rule 0): the
 * covariance of component bad_k (effective size bad_nk) is not positive
 * definite; S_MCLUST_FAIL (rule 1): reason in bad_k. */
static int mm_load_svd(void); /* mclust's EVE/VVE M-step: the section before the method table */
static int mm_mstep(Work *ws, int eve, const double *mu_old, double *pi, double *mu, double *cov,
                    double *state);

static PyObject *em_loop(PyObject *self, PyObject *args)
{
    Py_buffer bx, bp, bm, bc, bu, bh, bw, bmm;
    PyObject *wobj, *mmobj = Py_None;
    Py_ssize_t n, D, K, max_iter;
    int model, rule;
    double tol, reg, eps, lb0;
    int have_w = 0, have_mm = 0;
    if (!PyArg_ParseTuple(args, "y*Ow*w*w*w*w*nnniiddndd|O", &bx, &wobj, &bp, &bm, &bc, &bu, &bh, &n, &D,
                          &K, &model, &rule, &tol, &reg, &max_iter, &eps, &lb0, &mmobj))
        return NULL;
    PyObject *result = NULL;
    Work ws;
    ws.nk = NULL;
    double *spare = NULL;
    if (wobj != Py_None) {
        if (PyObject_GetBuffer(wobj, &bw, PyBUF_SIMPLE) < 0)
            goto release;
        have_w = 1;
    }
    if (mmobj != Py_None) { /* rule 1, EVE/VVE: mclust's M-step with its state [D, shape, new D, new shape] */
        if (PyObject_GetBuffer(mmobj, &bmm, PyBUF_WRITABLE) < 0)
            goto release;
        have_mm = 1;
        if (rule != 1 || (model != M_EVE && model != M_VVE)) {
            PyErr_SetString(PyExc_ValueError, "em_loop: an MM state is for rule 1 and EVE/VVE only");
            goto release;
        }
        if (check_len(&bmm, 2 * (D * D + K * D), "mm_state") || mm_load_svd() < 0)
            goto release;
    }
    if (n < 1 || D < 1 || D > 62 || K < 1 || model < 1 || model >= M_LAST || rule < 0 || rule > 1
        || max_iter < 1) {
        PyErr_SetString(PyExc_ValueError, "em_loop: bad shape, model or rule");
        goto release;
    }
    if (check_len(&bx, n * D, "X") || check_len(&bp, K, "weights") || check_len(&bm, K * D, "means")
        || check_len(&bc, K * D * D, "cov") || check_len(&bu, K * D * D, "U")
        || check_len(&bh, max_iter, "history") || (have_w && check_len(&bw, n, "w")))
        goto release;
    if (load_lapack() < 0)
        goto release;
    if (work_alloc(&ws, n, D, K) < 0) {
        PyErr_NoMemory();
        goto release;
    }
    /* the candidate parameters of an M-step: weights, means, cov, U */
    spare = (double *)malloc(sizeof(double) * (size_t)(K + K * D + 2 * K * D * D));
    if (spare == NULL) {
        PyErr_NoMemory();
        goto release;
    }
    {
        const double *X = (const double *)bx.buf, *w = have_w ? (const double *)bw.buf : NULL;
        double *pi = (double *)bp.buf, *mu = (double *)bm.buf, *cov = (double *)bc.buf;
        double *U = (double *)bu.buf, *hist = (double *)bh.buf;
        double *pi2 = spare, *mu2 = spare + K, *cov2 = spare + K + K * D, *U2 = cov2 + K * D * D;
        int diag = IS_DIAG_MODEL(model) || D == 1;
        int emode = IS_DIAG_MODEL(model) ? 1 : 0;
        int status = S_MAX_ITER;
        Py_ssize_t it, n_iter = max_iter, bad_k = -1;
        double last = lb0, bad_nk = 0.0, loglik, sum_w;
        Py_BEGIN_ALLOW_THREADS
        for (it = 1; it <= max_iter; it++) {
            if (estep_core(X, 0, w, n, D, K, mu, U, pi, emode, ws.nk, ws.s1, ws.s2, ws.ework, &loglik,
                           &sum_w, NULL)) {
                status = S_FALLBACK;
                n_iter = it - 1;
                break;
            }
            if (rule == 1) {
                if (!isfinite(loglik)) {
                    status = S_MCLUST_FAIL;
                    bad_k = F_LOGLIK;
                    n_iter = it;
                    break;
                }
                double err = fabs(last - loglik) / (1.0 + fabs(loglik));
                if (!(err > tol)) {
                    hist[it - 1] = loglik;
                    last = loglik;
                    status = S_CONVERGED;
                    n_iter = it;
                    break;
                }
                Py_ssize_t k;
                for (k = 0; k < K; k++)
                    if (!(ws.nk[k] > 0.0))
                        break;
                if (k < K) {
                    status = S_MCLUST_FAIL;
                    bad_k = F_EMPTY;
                    n_iter = it;
                    break;
                }
            }
            if (have_mm ? mm_mstep(&ws, model == M_EVE, mu, pi2, mu2, cov2, (double *)bmm.buf)
                        : mstep_core(&ws, model, reg, mu, pi2, mu2, cov2, cov)) {
                if (rule == 1) { /* a singular W_k (EVV) or sum (VEE) under mclust's reg = 0: NA */
                    status = S_MCLUST_FAIL;
                    bad_k = F_SINGULAR;
                    n_iter = it;
                } else {
                    status = S_FALLBACK;
                    n_iter = it - 1;
                }
                break;
            }
            Py_ssize_t bad = prec_chol_core(cov2, U2, K, D, diag, ws.L);
            if (bad >= 0) {
                if (rule == 1) {
                    status = S_MCLUST_FAIL;
                    bad_k = F_SINGULAR;
                } else {
                    status = S_DEGENERATE;
                    bad_k = bad;
                    bad_nk = ws.nk[bad];
                }
                n_iter = it;
                break;
            }
            if (rule == 1) {
                Py_ssize_t p;
                for (p = 0; p < K * D; p++)
                    if (!isfinite(mu2[p]))
                        break;
                if (p < K * D) {
                    status = S_MCLUST_FAIL;
                    bad_k = F_MEANS;
                    n_iter = it;
                    break;
                }
                int rc = rcond_ok(&ws, model, cov2, U2, eps);
                if (rc < 0) {
                    status = S_FALLBACK;
                    n_iter = it - 1;
                    break;
                }
                if (rc == 0) {
                    status = S_MCLUST_FAIL;
                    bad_k = F_RCOND;
                    n_iter = it;
                    break;
                }
            }
            memcpy(pi, pi2, sizeof(double) * (size_t)K);
            memcpy(mu, mu2, sizeof(double) * (size_t)(K * D));
            memcpy(cov, cov2, sizeof(double) * (size_t)(K * D * D));
            memcpy(U, U2, sizeof(double) * (size_t)(K * D * D));
            if (have_mm) /* the M-step accepted: its orientation and shapes carry on */
                memcpy(bmm.buf, (double *)bmm.buf + D * D + K * D, sizeof(double) * (size_t)(D * D + K * D));
            if (rule == 1) {
                hist[it - 1] = loglik;
                last = loglik;
            } else {
                double lb = loglik / sum_w, change = lb - last;
                hist[it - 1] = lb;
                last = lb;
                if (fabs(change) < tol) {
                    status = S_CONVERGED;
                    n_iter = it;
                    break;
                }
            }
        }
        Py_END_ALLOW_THREADS
        result = Py_BuildValue("indnd", status, n_iter, last, bad_k, bad_nk);
    }
release:
    free(spare);
    work_free(&ws);
    if (have_w)
        PyBuffer_Release(&bw);
    if (have_mm)
        PyBuffer_Release(&bmm);
    PyBuffer_Release(&bx);
    PyBuffer_Release(&bp);
    PyBuffer_Release(&bm);
    PyBuffer_Release(&bc);
    PyBuffer_Release(&bu);
    PyBuffer_Release(&bh);
    return result;
}

/* Given statistics (nk, s1, s2 buffers of the checked lengths) into ws; a full
 * (K, D, D) s2 made exactly symmetric, as the numpy M-step makes W. */
static void stats_into(Work *ws, const Py_buffer *bnk, const Py_buffer *bs1, const Py_buffer *bs2, int full)
{
    Py_ssize_t K = ws->K, D = ws->D, k, j, l;
    memcpy(ws->nk, bnk->buf, sizeof(double) * (size_t)K);
    memcpy(ws->s1, bs1->buf, sizeof(double) * (size_t)(K * D));
    memcpy(ws->s2, bs2->buf, sizeof(double) * (size_t)(full ? K * D * D : K * D));
    if (full)
        for (k = 0; k < K; k++)
            for (j = 0; j < D; j++)
                for (l = j + 1; l < D; l++) {
                    double *a = ws->s2 + k * D * D + j * D + l, *b = ws->s2 + k * D * D + l * D + j;
                    *a = *b = 0.5 * (*a + *b);
                }
}

/* mstep(nk, s1, s2, shift, prev, weights, means, cov, U, D, K, model, reg) -> (status, bad)
 * One M-step of em_loop's models from given statistics (shifted at shift):
 * weights, means, cov and U written. prev: None or the (K, D, D) covariances
 * entering the iteration (EVE/VVE start there; None: the cold start).
 * status 0: done; 1: a factorization failed inside an iterative solve (the
 * numpy M-step decides); 2: the covariance of component bad is not positive
 * definite. */
static PyObject *mstep(PyObject *self, PyObject *args)
{
    Py_buffer bnk, bs1, bs2, bsh, bp, bm, bc, bu, bprev;
    PyObject *prevobj;
    Py_ssize_t D, K;
    int model, have_prev = 0;
    double reg;
    if (!PyArg_ParseTuple(args, "y*y*y*y*Ow*w*w*w*nnid", &bnk, &bs1, &bs2, &bsh, &prevobj, &bp, &bm, &bc,
                          &bu, &D, &K, &model, &reg))
        return NULL;
    PyObject *result = NULL;
    Work ws;
    ws.nk = NULL;
    if (prevobj != Py_None) {
        if (PyObject_GetBuffer(prevobj, &bprev, PyBUF_SIMPLE) < 0)
            goto release;
        have_prev = 1;
    }
    if (D < 1 || D > 62 || K < 1 || model < 1 || model >= M_LAST) {
        PyErr_SetString(PyExc_ValueError, "mstep: bad shape or model");
        goto release;
    }
    Py_ssize_t s2len = IS_DIAG_MODEL(model) ? K * D : K * D * D;
    if (check_len(&bnk, K, "nk") || check_len(&bs1, K * D, "s1") || check_len(&bs2, s2len, "s2")
        || check_len(&bsh, K * D, "shift") || check_len(&bp, K, "weights")
        || check_len(&bm, K * D, "means") || check_len(&bc, K * D * D, "cov")
        || check_len(&bu, K * D * D, "U") || (have_prev && check_len(&bprev, K * D * D, "prev")))
        goto release;
    if (load_lapack() < 0)
        goto release;
    if (work_alloc(&ws, 0, D, K) < 0) {
        PyErr_NoMemory();
        goto release;
    }
    {
        Py_ssize_t bad = -1;
        int status;
        stats_into(&ws, &bnk, &bs1, &bs2, !IS_DIAG_MODEL(model));
        Py_BEGIN_ALLOW_THREADS
        status = mstep_core(&ws, model, reg, (const double *)bsh.buf, (double *)bp.buf, (double *)bm.buf,
                            (double *)bc.buf, have_prev ? (const double *)bprev.buf : NULL);
        if (status == 0) {
            bad = prec_chol_core((const double *)bc.buf, (double *)bu.buf, K, D,
                                 IS_DIAG_MODEL(model) || D == 1, ws.L);
            if (bad >= 0)
                status = 2;
        }
        Py_END_ALLOW_THREADS
        result = Py_BuildValue("in", status, bad);
    }
release:
    work_free(&ws);
    if (have_prev)
        PyBuffer_Release(&bprev);
    PyBuffer_Release(&bnk);
    PyBuffer_Release(&bs1);
    PyBuffer_Release(&bs2);
    PyBuffer_Release(&bsh);
    PyBuffer_Release(&bp);
    PyBuffer_Release(&bm);
    PyBuffer_Release(&bc);
    PyBuffer_Release(&bu);
    return result;
}

/* stats_resp(X, w, resp, shift, nk, s1, s2, n, D, K, mode) -> None
 * The shifted statistics of rows X with responsibilities resp (n, K):
 * nk[k] = sum_n w_n r_nk, s1[k] = sum_n w_n r_nk (x_n - c_k), s2[k] = sum_n
 * w_n r_nk (x_n - c_k)(x_n - c_k)^T (mode 0; its diagonal otherwise), c = shift. */
static PyObject *stats_resp(PyObject *self, PyObject *args)
{
    Py_buffer bx, br, bc, bnk, bs1, bs2, bw;
    PyObject *wobj;
    Py_ssize_t n, D, K;
    int mode, have_w = 0;
    if (!PyArg_ParseTuple(args, "y*Oy*y*w*w*w*nnni", &bx, &wobj, &br, &bc, &bnk, &bs1, &bs2, &n, &D, &K,
                          &mode))
        return NULL;
    PyObject *result = NULL;
    if (wobj != Py_None) {
        if (PyObject_GetBuffer(wobj, &bw, PyBUF_SIMPLE) < 0)
            goto release;
        have_w = 1;
    }
    Py_ssize_t s2len = (mode == 0) ? K * D * D : K * D;
    if (check_len(&bx, n * D, "X") || check_len(&br, n * K, "resp") || check_len(&bc, K * D, "shift")
        || check_len(&bnk, K, "nk") || check_len(&bs1, K * D, "s1") || check_len(&bs2, s2len, "s2")
        || (have_w && check_len(&bw, n, "w")))
        goto release;
    {
        const double *X = (const double *)bx.buf, *R = (const double *)br.buf, *c = (const double *)bc.buf;
        const double *w = have_w ? (const double *)bw.buf : NULL;
        double *nk = (double *)bnk.buf, *s1 = (double *)bs1.buf, *s2 = (double *)bs2.buf;
        Py_ssize_t i, k, j, l;
        Py_BEGIN_ALLOW_THREADS
        memset(nk, 0, sizeof(double) * (size_t)K);
        memset(s1, 0, sizeof(double) * (size_t)(K * D));
        memset(s2, 0, sizeof(double) * (size_t)s2len);
        for (i = 0; i < n; i++) {
            const double *x = X + i * D;
            double wi = w ? w[i] : 1.0;
            for (k = 0; k < K; k++) {
                double r = R[i * K + k] * wi;
                if (r == 0.0)
                    continue;
                const double *ck = c + k * D;
                nk[k] += r;
                for (j = 0; j < D; j++) {
                    double dj = x[j] - ck[j];
                    s1[k * D + j] += r * dj;
                    if (mode == 0) {
                        double rd = r * dj;
                        for (l = j; l < D; l++)
                            s2[k * D * D + j * D + l] += rd * (x[l] - ck[l]);
                    } else {
                        s2[k * D + j] += r * dj * dj;
                    }
                }
            }
        }
        if (mode == 0)
            for (k = 0; k < K; k++)
                for (j = 0; j < D; j++)
                    for (l = j + 1; l < D; l++)
                        s2[k * D * D + l * D + j] = s2[k * D * D + j * D + l];
        Py_END_ALLOW_THREADS
    }
    result = Py_None;
    Py_INCREF(result);
release:
    if (have_w)
        PyBuffer_Release(&bw);
    PyBuffer_Release(&bx);
    PyBuffer_Release(&br);
    PyBuffer_Release(&bc);
    PyBuffer_Release(&bnk);
    PyBuffer_Release(&bs1);
    PyBuffer_Release(&bs2);
    return result;
}

/* ------------------------------------------------------------------------
 * mclust's own EVE/VVE M-step (em_loop with rule 1 and an MM state; see
 * emix/families/gaussian/mclust/_mm.py, which this follows step for step):
 * the majorization-minimization iterations of Browne & McNicholas (2014,
 * ADAC 8, 217-226) as mclust (Scrucca et al. 2016; meEVE/meVVE) runs them,
 * with its start (D = I, shapes one), tolerance (sqrt(eps)), iteration cap
 * (.Machine$integer.max) and the orientation and shapes carried from one
 * M-step to the next. Row-major: D[i * d + j] is row i of the axis j.
 * ------------------------------------------------------------------------ */

typedef void (*dgesvd_fn)(char *, char *, int *, int *, double *, int *, double *, double *, int *,
                          double *, int *, double *, int *, int *);
static dgesvd_fn dgesvd_ptr = NULL;
#define MM_RTEPS 1.4901161193847656e-08 /* sqrt(eps): mclust's checks and emControl()$tol[2] */
#define MM_MAX_ITER 2147483647L          /* emControl()$itmax[2] */

/* dgesvd, loaded once; 0 or -1 with an exception set */
static int mm_load_svd(void)
{
    if (dgesvd_ptr == NULL)
        dgesvd_ptr = (dgesvd_fn)lapack_fn("dgesvd");
    return dgesvd_ptr == NULL ? -1 : 0;
}

/* The orthogonal polar factor P R^T of the d x d (row-major) F = P S R^T,
 * into Q (row-major); F is overwritten. LAPACK sees F^T = R S P^T (column
 * major), returns u = R and vt = P^T; the column-major product u vt = R P^T
 * read row-major is P R^T. 0, or LAPACK's info. */
EMIX_ALWAYS_INLINE int mm_polar(double *F, Py_ssize_t d, double *Q, double *u, double *vt, double *s, double *work,
                    int lwork, double *V, int *warm)
{
    if (d <= JACOBI_MAX) { /* Jacobi, from the V of this step's previous F (see jacobi_polar) */
        if (jacobi_polar(F, d, Q, u, V, *warm) == 0) {
            *warm = 1;
            return 0;
        }
        *warm = 0;
    }
    char job = 'A';
    int n = (int)d, info = 0;
    dgesvd_ptr(&job, &job, &n, &n, F, &n, s, u, &n, vt, &n, work, &lwork, &info);
    if (info != 0)
        return info;
    Py_ssize_t i, j, l;
    for (j = 0; j < d; j++)
        for (i = 0; i < d; i++) {
            double acc = 0.0;
            for (l = 0; l < d; l++)
                acc += u[i + l * d] * vt[l + j * d];
            Q[i + j * d] = acc;
        }
    return 0;
}

/* One M-step of mclust's EVE (eve = 1) or VVE from the statistics in ws
 * (shifted at mu_old): pi, mu, cov (K, d, d) written. state: [D (d x d),
 * shape (K x d)] entering the M-step; the new ones are written to
 * state + d d + K d (accepted by the caller). 0 done; 1 mclust's failure
 * (an eigenvalue of W_k or a shape/volume below sqrt(eps), LAPACK failed,
 * no memory): NA under rule 1. */
EMIX_ALWAYS_INLINE int mm_mstep_body(Work *ws, Py_ssize_t d, int eve, const double *mu_old, double *pi,
                                     double *mu, double *cov, double *state)
{
    Py_ssize_t K = ws->K, k, i, j, l;
    Py_ssize_t dd = d * d, Kd = K * d;
    int lwork = (int)(8 * d + 64), rc = 1;
    double *buf = (double *)malloc(sizeof(double) * (size_t)(2 * K * dd + 7 * dd + 3 * Kd + d + lwork));
    if (buf == NULL)
        return 1;
    double *W = buf, *Ws = W + K * dd, *F = Ws + K * dd, *Q = F + dd, *u = Q + dd, *vt = u + dd,
           *WD = vt + dd, *inv = WD + dd, *b = inv + Kd, *lam = b + Kd, *sv = lam + Kd, *work = sv + d,
           *V1 = work + lwork, *V2 = V1 + dd; /* the two polar steps' last right singular vectors */
    int warm1 = 0, warm2 = 0;
    const double *D0 = state, *a0 = state + dd;
    double *D = state + dd + Kd, *a = D + dd;
    double ntot = 0.0;
    const double *nk = ws->nk;
    for (k = 0; k < K; k++)
        ntot += nk[k];
    for (k = 0; k < K; k++) {
        pi[k] = nk[k] / ntot;
        for (j = 0; j < d; j++) {
            ws->delta[k * d + j] = ws->s1[k * d + j] / nk[k];
            mu[k * d + j] = mu_old[k * d + j] + ws->delta[k * d + j];
        }
        double *Wk = W + k * dd;
        const double *dk = ws->delta + k * d, *S2 = ws->s2 + k * dd;
        for (i = 0; i < d; i++)
            for (j = 0; j < d; j++)
                Wk[i * d + j] = S2[i * d + j] - nk[k] * dk[i] * dk[j];
        for (i = 0; i < d; i++)
            for (j = i + 1; j < d; j++)
                Wk[i * d + j] = Wk[j * d + i] = 0.5 * (Wk[i * d + j] + Wk[j * d + i]);
        /* eigenvalues (ascending): all >= sqrt(eps); omega_k the largest */
        if (sym_eig(ws, Wk, d, sv, Q, 0) != 0)
            goto done;
        if (!(sv[0] >= MM_RTEPS) || !isfinite(sv[d - 1]))
            goto done;
        memcpy(Ws + k * dd, Wk, sizeof(double) * (size_t)dd);
        for (j = 0; j < d; j++)
            Ws[k * dd + j * d + j] -= sv[d - 1];
    }
    memcpy(D, D0, sizeof(double) * (size_t)dd);
    memcpy(a, a0, sizeof(double) * (size_t)Kd);
    double prev = 1.7976931348623157e308 / 2.0, trgt = 0.0;
    long it = 0;
    for (;;) {
        it++;
        for (l = 0; l < Kd; l++)
            inv[l] = 1.0 / a[l];
        /* MM step 1: F = sum_k diag(1/a_k) D^T (W_k - omega_k I); D <- (P R^T)^T */
        for (j = 0; j < dd; j++)
            F[j] = 0.0;
        for (k = 0; k < K; k++) { /* rows of F and W_k innermost (contiguous) */
            const double *Wk = Ws + k * dd;
            for (i = 0; i < d; i++)
                for (j = 0; j < d; j++) {
                    double cij = inv[k * d + j] * D[i * d + j];
                    for (l = 0; l < d; l++)
                        F[j * d + l] += cij * Wk[i * d + l];
                }
        }
        if (mm_polar(F, d, Q, u, vt, sv, work, lwork, V1, &warm1) != 0)
            goto done;
        for (i = 0; i < d; i++)
            for (j = 0; j < d; j++)
                D[i * d + j] = Q[j * d + i];
        /* MM step 2: F = sum_k W_k D (diag(1/a_k) - max_j(1/a_kj) I); D <- P R^T */
        for (j = 0; j < dd; j++)
            F[j] = 0.0;
        for (k = 0; k < K; k++) {
            const double *Wk = W + k * dd;
            double mx = inv[k * d];
            for (j = 1; j < d; j++)
                mx = fmax(mx, inv[k * d + j]);
            for (j = 0; j < d; j++)
                sv[j] = inv[k * d + j] - mx; /* (sv: free until the next polar factor) */
            for (i = 0; i < d; i++)
                for (l = 0; l < d; l++) {
                    double wil = Wk[i * d + l];
                    for (j = 0; j < d; j++)
                        F[i * d + j] += wil * D[l * d + j] * sv[j];
                }
        }
        if (mm_polar(F, d, Q, u, vt, sv, work, lwork, V2, &warm2) != 0)
            goto done;
        memcpy(D, Q, sizeof(double) * (size_t)dd);
        /* shapes given D: b_k = diag(D^T W_k D) */
        trgt = 0.0;
        for (k = 0; k < K; k++) {
            const double *Wk = W + k * dd;
            for (i = 0; i < d; i++) {
                for (j = 0; j < d; j++)
                    WD[i * d + j] = 0.0;
                for (l = 0; l < d; l++) {
                    double wil = Wk[i * d + l];
                    for (j = 0; j < d; j++)
                        WD[i * d + j] += wil * D[l * d + j];
                }
            }
            double lg = 0.0;
            for (j = 0; j < d; j++) {
                double acc = 0.0;
                for (i = 0; i < d; i++)
                    acc += D[i * d + j] * WD[i * d + j];
                b[k * d + j] = eve ? acc : acc / nk[k];
                lg += log(b[k * d + j]);
            }
            double g = exp(lg / (double)d);
            lam[k] = g;
            for (j = 0; j < d; j++) {
                a[k * d + j] = b[k * d + j] / g;
                if (!(a[k * d + j] >= MM_RTEPS))
                    goto done;
            }
            if (!eve && !(g >= MM_RTEPS))
                goto done;
            for (j = 0; j < d; j++)
                trgt += (eve ? b[k * d + j] : b[k * d + j] * nk[k]) / a[k * d + j];
        }
        double err = fabs(trgt - prev) / (1.0 + fabs(trgt));
        prev = trgt;
        if (!(err > MM_RTEPS && it < MM_MAX_ITER))
            break;
    }
    for (k = 0; k < K; k++) {
        double sc = eve ? trgt / (ntot * (double)d) : lam[k];
        double *Ck = cov + k * dd;
        for (i = 0; i < d; i++)
            for (l = i; l < d; l++) {
                double acc = 0.0;
                for (j = 0; j < d; j++)
                    acc += D[i * d + j] * (sc * a[k * d + j]) * D[l * d + j];
                Ck[i * d + l] = Ck[l * d + i] = acc;
            }
    }
    rc = 0;
    for (l = 0; l < K * dd; l++)
        if (!isfinite(cov[l]))
            rc = 1;
done:
    free(buf);
    return rc;
}

/* mm_mstep_body with small orientation sizes as compile-time constants (the
 * inner MM iterations' products and polar factors unrolled) */
static int mm_mstep(Work *ws, int eve, const double *mu_old, double *pi, double *mu, double *cov,
                    double *state)
{
    switch (ws->D) {
    case 2: return mm_mstep_body(ws, 2, eve, mu_old, pi, mu, cov, state);
    case 3: return mm_mstep_body(ws, 3, eve, mu_old, pi, mu, cov, state);
    case 4: return mm_mstep_body(ws, 4, eve, mu_old, pi, mu, cov, state);
    case 5: return mm_mstep_body(ws, 5, eve, mu_old, pi, mu, cov, state);
    case 6: return mm_mstep_body(ws, 6, eve, mu_old, pi, mu, cov, state);
    default: return mm_mstep_body(ws, ws->D, eve, mu_old, pi, mu, cov, state);
    }
}

/* mm_step(nk, s1, s2, shift, state, eve, weights, means, cov, U, D, K, eps) -> status
 * One of mclust's EVE (eve != 0) / VVE M-steps (mm_mstep) from given
 * statistics (shifted at shift), with em_loop's rule-1 checks: the precision
 * factors and the reciprocal-condition test. state: 2 (D D + K D) doubles as
 * em_loop's mm_state (the first half entering; on success the new
 * orientation and shapes are copied there). 0 done; 1 mclust's NA. */
static PyObject *mm_step(PyObject *self, PyObject *args)
{
    Py_buffer bnk, bs1, bs2, bsh, bst, bp, bm, bc, bu;
    Py_ssize_t D, K;
    int eve;
    double eps;
    if (!PyArg_ParseTuple(args, "y*y*y*y*w*iw*w*w*w*nnd", &bnk, &bs1, &bs2, &bsh, &bst, &eve, &bp, &bm, &bc,
                          &bu, &D, &K, &eps))
        return NULL;
    PyObject *result = NULL;
    Work ws;
    ws.nk = NULL;
    if (D < 1 || D > 62 || K < 1) {
        PyErr_SetString(PyExc_ValueError, "mm_step: bad shape");
        goto release;
    }
    if (check_len(&bnk, K, "nk") || check_len(&bs1, K * D, "s1") || check_len(&bs2, K * D * D, "s2")
        || check_len(&bsh, K * D, "shift") || check_len(&bst, 2 * (D * D + K * D), "state")
        || check_len(&bp, K, "weights") || check_len(&bm, K * D, "means")
        || check_len(&bc, K * D * D, "cov") || check_len(&bu, K * D * D, "U"))
        goto release;
    if (load_lapack() < 0 || mm_load_svd() < 0)
        goto release;
    if (work_alloc(&ws, 0, D, K) < 0) {
        PyErr_NoMemory();
        goto release;
    }
    {
        int status = 1;
        double *state = (double *)bst.buf, *cov = (double *)bc.buf, *U = (double *)bu.buf;
        stats_into(&ws, &bnk, &bs1, &bs2, 1);
        Py_BEGIN_ALLOW_THREADS
        if (mm_mstep(&ws, eve, (const double *)bsh.buf, (double *)bp.buf, (double *)bm.buf, cov, state) == 0
            && prec_chol_core(cov, U, K, D, D == 1, ws.L) < 0
            && rcond_ok(&ws, eve ? M_EVE : M_VVE, cov, U, eps) == 1) {
            memcpy(state, state + D * D + K * D, sizeof(double) * (size_t)(D * D + K * D));
            status = 0;
        }
        Py_END_ALLOW_THREADS
        result = PyLong_FromLong(status);
    }
release:
    work_free(&ws);
    PyBuffer_Release(&bnk);
    PyBuffer_Release(&bs1);
    PyBuffer_Release(&bs2);
    PyBuffer_Release(&bsh);
    PyBuffer_Release(&bst);
    PyBuffer_Release(&bp);
    PyBuffer_Release(&bm);
    PyBuffer_Release(&bc);
    PyBuffer_Release(&bu);
    return result;
}

/* set_isa(code) -> active: code -1 detects the CPU again, 0 forces the
 * portable variant (tests compare the two); returns 1 when the AVX2 variant
 * (and libmvec's exp/log where linked) is in use, else 0 */
static PyObject *set_isa(PyObject *self, PyObject *args)
{
    int code;
    if (!PyArg_ParseTuple(args, "i", &code))
        return NULL;
#ifdef EMIX_X86_DISPATCH
    if (code < 0) {
        cpu_avx2_fma = -1;
        return PyLong_FromLong(have_avx2_fma());
    }
    cpu_avx2_fma = 0;
#endif
    return PyLong_FromLong(0);
}

static PyMethodDef methods[] = {
    {"set_isa", set_isa, METH_VARARGS,
     "set_isa(code) -> active\n\n"
     "-1: the fastest E-step variant this CPU runs (the default); 0: the portable one. Returns 1 when\n"
     "the AVX2 variant is in use."},
    {"estep", estep, METH_VARARGS,
     "estep(X, w, means, U, weights, nk, s1, s2, n, D, K, mode[, xf32]) -> (loglik, sum_w, status, logmax)\n\n"
     "Gaussian E-step and shifted statistics of one block (see emix.core.small)."},
    {"prec_chol", prec_chol, METH_VARARGS,
     "prec_chol(cov, out, K, D, diag) -> first failing component or -1\n\n"
     "Upper-triangular precision Cholesky factors of a (K, D, D) stack (see emix.core.small)."},
    {"em_loop", em_loop, METH_VARARGS,
     "em_loop(X, w, weights, means, cov, U, history, n, D, K, model, rule, tol, reg, max_iter, eps, lb0\n"
     "        [, mm_state])\n"
     "-> (status, n_iter, last, bad_k, bad_nk)\n\n"
     "The whole EM loop of a small fit (see emix.core.small.em_loop)."},
    {"mstep", mstep, METH_VARARGS,
     "mstep(nk, s1, s2, shift, prev, weights, means, cov, U, D, K, model, reg) -> (status, bad)\n\n"
     "One M-step of em_loop's covariance models (see emix.core.small.m_step)."},
    {"stats_resp", stats_resp, METH_VARARGS,
     "stats_resp(X, w, resp, shift, nk, s1, s2, n, D, K, mode) -> None\n\n"
     "Shifted statistics of rows with given responsibilities (see emix.core.small.stats_from_resp)."},
    {"mm_step", mm_step, METH_VARARGS,
     "mm_step(nk, s1, s2, shift, state, eve, weights, means, cov, U, D, K, eps) -> status\n\n"
     "mclust's EVE/VVE M-step from given statistics (see emix.core.small.mm_m_step)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_small_kernels",
                                    "Compiled E-step for small in-memory data (emix.core.small).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__small_kernels(void) { return PyModule_Create(&module); }
