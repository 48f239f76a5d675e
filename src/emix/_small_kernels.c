/*
 * emix._small_kernels: the Gaussian E-step of a small in-memory block in one
 * call (see emix/core/small.py, which owns the Python side and the fallback).
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
 * Written for emix from the formulas above; plain C99 and the Python C API
 * (buffer protocol), no numpy headers, so it builds with any C compiler that
 * setuptools finds.
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

/* estep(X, w, means, U, weights, nk, s1, s2, n, D, K, mode) -> (loglik, sum_w, status)
 *   mode 0: U is (K, D, D) upper triangular, s2 is (K, D, D)
 *   mode 1: U is (K, D, D) diagonal matrices, s2 is (K, D)
 *   mode 2: U is (K, D) (diagonal factors), s2 is (K, D)
 *   w: None or (n,) float64
 *   status 0: done; 1: a far row or a NaN term (outputs undefined: the caller
 *   runs the general E-step instead). */
static PyObject *estep(PyObject *self, PyObject *args)
{
    Py_buffer bx, bm, bu, bp, bnk, bs1, bs2, bw;
    PyObject *wobj;
    Py_ssize_t n, D, K;
    int mode;
    int have_w = 0;
    if (!PyArg_ParseTuple(args, "y*Oy*y*y*w*w*w*nnni", &bx, &wobj, &bm, &bu, &bp, &bnk, &bs1, &bs2,
                          &n, &D, &K, &mode))
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
    if (check_len(&bx, n * D, "X") || check_len(&bm, K * D, "means") || check_len(&bu, ulen, "U")
        || check_len(&bp, K, "weights") || check_len(&bnk, K, "nk") || check_len(&bs1, K * D, "s1")
        || check_len(&bs2, s2len, "s2") || (have_w && check_len(&bw, n, "w")))
        goto release;

    const double *X = (const double *)bx.buf, *mu = (const double *)bm.buf;
    const double *U = (const double *)bu.buf, *pi = (const double *)bp.buf;
    const double *w = have_w ? (const double *)bw.buf : NULL;
    double *nk = (double *)bnk.buf, *s1 = (double *)bs1.buf, *s2 = (double *)bs2.buf;
    double loglik = 0.0, sum_w = 0.0;
    int status = 0;

    Py_BEGIN_ALLOW_THREADS
    /* work: c (K), lp (K), diag factors (K*D), differences (K*D) */
    work = (double *)malloc(sizeof(double) * (size_t)(2 * K + 2 * K * D));
    if (work != NULL) {
        double *c = work, *lp = work + K, *u = work + 2 * K, *d = work + 2 * K + K * D;
        Py_ssize_t k, i, j, l;
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
        for (i = 0; i < n && status == 0; i++) {
            const double *x = X + i * D;
            double m = -INFINITY;
            for (k = 0; k < K; k++) {
                const double *mk = mu + k * D;
                double *dk = d + k * D;
                double maha = 0.0;
                for (j = 0; j < D; j++)
                    dk[j] = x[j] - mk[j];
                if (mode == 0) {
                    const double *Uk = U + k * D * D;
                    for (j = 0; j < D; j++) { /* y_j = sum_{l <= j} d_l U_lj */
                        double y = 0.0;
                        for (l = 0; l <= j; l++)
                            y += dk[l] * Uk[l * D + j];
                        maha += y * y;
                    }
                } else {
                    const double *uk = u + k * D;
                    for (j = 0; j < D; j++) {
                        double y = dk[j] * uk[j];
                        maha += y * y;
                    }
                }
                lp[k] = c[k] - 0.5 * maha;
                if (lp[k] > m)
                    m = lp[k];
            }
            if (!(m > -FAR_LOG_PROB)) { /* far row or NaN: the general path decides */
                status = 1;
                break;
            }
            double s = 0.0;
            for (k = 0; k < K; k++) {
                lp[k] = exp(lp[k] - m);
                s += lp[k];
            }
            double wi = have_w ? w[i] : 1.0;
            loglik += wi * (m + log(s));
            sum_w += wi;
            double scale = wi / s;
            for (k = 0; k < K; k++) {
                double r = lp[k] * scale;
                const double *dk = d + k * D;
                double *s1k = s1 + k * D;
                nk[k] += r;
                for (j = 0; j < D; j++)
                    s1k[j] += r * dk[j];
                if (mode == 0) {
                    double *s2k = s2 + k * D * D;
                    for (j = 0; j < D; j++) {
                        double rd = r * dk[j];
                        for (l = j; l < D; l++)
                            s2k[j * D + l] += rd * dk[l];
                    }
                } else {
                    double *s2k = s2 + k * D;
                    for (j = 0; j < D; j++)
                        s2k[j] += r * dk[j] * dk[j];
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
    }
    Py_END_ALLOW_THREADS
    if (work == NULL) {
        PyErr_NoMemory();
        goto release;
    }
    if (!have_w)
        sum_w = (double)n;
    result = Py_BuildValue("ddi", loglik, sum_w, status);

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
    if (L != NULL) {
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

static PyMethodDef methods[] = {
    {"estep", estep, METH_VARARGS,
     "estep(X, w, means, U, weights, nk, s1, s2, n, D, K, mode) -> (loglik, sum_w, status)\n\n"
     "Gaussian E-step and shifted statistics of one block (see emix.core.small)."},
    {"prec_chol", prec_chol, METH_VARARGS,
     "prec_chol(cov, out, K, D, diag) -> first failing component or -1\n\n"
     "Upper-triangular precision Cholesky factors of a (K, D, D) stack (see emix.core.small)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_small_kernels",
                                    "Compiled E-step for small in-memory data (emix.core.small).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__small_kernels(void) { return PyModule_Create(&module); }
