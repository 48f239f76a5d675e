/*
 * emix._hc_kernels: mclust's model-based hierarchical clustering tree (the
 * merge sequence of hc(modelName = "VVV") and of "EII") in one call. The
 * Python side, the argument checks and the numpy reference/fallback are in
 * emix/core/mclust_hc.py (hc_pairs, _hc_pairs_numpy); this file is the same
 * algorithm, loop for loop, in C.
 *
 * Criterion (Fraley 1998, Section 3.4; Banfield & Raftery 1993): clusters are
 * merged, from singletons, so that sum_k T(k) grows least, with for a cluster
 * of m rows, scatter matrix W and tr = trace(W)
 *
 *   T = m log( beta (tr + alpha) / m )                  if m <= p
 *   T = m log( alpha beta / m )                         if tr = 0
 *   T = m log( det(W / m) + beta (tr + alpha) / m )     otherwise ('VVV')
 *
 * and the increase of the pooled trace, n_i n_j / (n_i + n_j) |mean_i -
 * mean_j|^2 (Ward's criterion), for 'EII'. Merging j into i:
 *
 *   W_ij = W_i + W_j + n_i n_j / (n_i + n_j) d d^T,   d = mean_i - mean_j.
 *
 * Ties go as in mclust: among equal costs the pair (i, j), i < j, with the
 * largest j, then the largest i, in the current numbering, where a merge
 * keeps the merged cluster at i and moves the last cluster into j. Each
 * row's least cost is cached and recomputed only where its column changed.
 *
 * Same merges as the numpy code, ties included: exact ties are only ever
 * between costs computed from identical operands, so the order of every
 * floating-point operation is the numpy code's:
 *   - |d|^2 in a merge (numpy's d @ d, a BLAS ddot): fused multiply-adds,
 *     left to right;
 *   - the pair costs' |dd|^2 (numpy's einsum 'ij,ij->i'): two lanes, products
 *     added to lane (c mod 2), eight terms per block in reverse order, then
 *     lane 0 + lane 1;
 *   - log det(W/m) (numpy's slogdet: LAPACK getrf as OpenBLAS computes it
 *     for small matrices): a left-looking LU with partial pivoting, dot
 *     products as fused multiply-adds, reciprocal pivot scaling, then the
 *     sum of log |u_jj| from 0.
 * The transcendental functions are the C library's (numpy's vectorized exp,
 * log and log1p can differ from them in the last bit); that, and for p >= 6
 * OpenBLAS's blocked kernels, can move a cost by an ulp, which changes a
 * merge only where two different clusters' costs agree to the last bits.
 * Every other operation is written so that the compiler may not fuse it.
 *
 * References
 *   Fraley, C. (1998). Algorithms for model-based Gaussian hierarchical
 *   clustering. SIAM J. Sci. Comput. 20, 270-281.
 *   Banfield, J. D. & Raftery, A. E. (1993). Model-based Gaussian and
 *   non-Gaussian clustering. Biometrics 49, 803-821.
 *
 * Written for emix from the formulas above; plain C99 and the Python C API
 * (buffer protocol), no numpy headers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The compute code below must round every operation as written: no fused
   multiply-add unless fma() is called. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

#if defined(__GNUC__) || defined(__clang__)
#define HC_INLINE static inline __attribute__((always_inline))
#else
#define HC_INLINE static inline
#endif

#define RTHALF 0.7071067811865476

typedef struct {
    Py_ssize_t n, p;
    int eii;
    double alpha, beta, ablog;
    const double *Z;
    int64_t *pairs;
    /* n x n costs, pair (r, c) at r n + c, r < c; +inf elsewhere */
    double *D;
    double *size, *mean, *W, *tr, *term, *rowmin;
    Py_ssize_t *rowarg;
    int64_t *name;
    unsigned char *stale;
    double *work; /* p (dd) + p p (W_ij) + p p (LU) + p (column) */
    Py_ssize_t *ipiv;
} HC;

/* sum_c x_c^2 as numpy's einsum('ij,ij->i') adds it (see the file notes) */
HC_INLINE double einsum_sq(const double *x, Py_ssize_t p)
{
    double l0 = 0.0, l1 = 0.0;
    Py_ssize_t c = 0;
    for (; p - c >= 8; c += 8) {
        int b;
        for (b = 3; b >= 0; b--) {
            l0 = x[c + 2 * b] * x[c + 2 * b] + l0;
            l1 = x[c + 2 * b + 1] * x[c + 2 * b + 1] + l1;
        }
    }
    for (; c < p; c += 2) {
        l0 = x[c] * x[c] + l0;
        if (c + 1 < p)
            l1 = x[c + 1] * x[c + 1] + l1;
        else
            l1 = 0.0 + l1;
    }
    return l0 + l1;
}

/* sum_c x_c^2 with fused multiply-adds, left to right (numpy's d @ d) */
HC_INLINE double fma_sq(const double *x, Py_ssize_t p)
{
    double s = 0.0;
    Py_ssize_t c;
    for (c = 0; c < p; c++)
        s = fma(x[c], x[c], s);
    return s;
}

/* log|det A| of the p x p matrix A (row-major; destroyed) by LU with partial
 * pivoting, left-looking (column j: the earlier row interchanges, the
 * triangular solve for u_0j..u_(j-1)j by dot products, the update of the
 * rows below by dot products, the pivot (first of largest modulus), the row
 * interchange and the scaling by 1 / pivot). Returns 1 with *logdet when
 * det A > 0, else 0 (det <= 0, as numpy's sign <= 0). b: p doubles. */
HC_INLINE int logdet_pd(double *A, Py_ssize_t p, double *b, Py_ssize_t *ipiv, double *logdet)
{
    Py_ssize_t i, j, k;
    int neg = 0;
    for (j = 0; j < p; j++) {
        for (i = 0; i < p; i++)
            b[i] = A[i * p + j];
        for (i = 0; i < j; i++) {
            Py_ssize_t ip = ipiv[i];
            if (ip != i) {
                double t = b[i];
                b[i] = b[ip];
                b[ip] = t;
            }
        }
        for (i = 1; i < j; i++) {
            double s = 0.0;
            for (k = 0; k < i; k++)
                s = fma(A[i * p + k], b[k], s);
            b[i] = b[i] - s;
        }
        if (j > 0)
            for (i = j; i < p; i++) {
                double s = 0.0;
                for (k = 0; k < j; k++)
                    s = fma(A[i * p + k], b[k], s);
                b[i] = b[i] - s;
            }
        Py_ssize_t jp = j;
        double big = fabs(b[j]);
        for (i = j + 1; i < p; i++)
            if (fabs(b[i]) > big) {
                big = fabs(b[i]);
                jp = i;
            }
        ipiv[j] = jp;
        for (i = 0; i < p; i++)
            A[i * p + j] = b[i];
        double piv = b[jp];
        if (piv == 0.0 || piv != piv)
            return 0; /* singular (LAPACK's info > 0) or NaN */
        if (jp != j) {
            neg ^= 1;
            for (k = 0; k <= j; k++) {
                double t = A[j * p + k];
                A[j * p + k] = A[jp * p + k];
                A[jp * p + k] = t;
            }
        }
        if (fabs(piv) >= DBL_MIN) {
            double r = 1.0 / piv;
            for (i = j + 1; i < p; i++)
                A[i * p + j] *= r;
        } else {
            for (i = j + 1; i < p; i++)
                A[i * p + j] /= piv;
        }
    }
    double acc = 0.0;
    for (j = 0; j < p; j++) {
        double u = A[j * p + j];
        if (u < 0.0) {
            neg ^= 1;
            u = -u;
        }
        acc += log(u);
    }
    *logdet = acc;
    return !neg;
}

/* Fraley's regularized VVV term T (file notes) of a cluster of m rows with
 * scatter W (p x p, read only) and trace tr; A, b: work */
HC_INLINE double vvv_term(const HC *h, double m, const double *W, double tr, double *A, double *b)
{
    Py_ssize_t p = h->p, k;
    double base = (h->beta * (tr + h->alpha)) / m;
    if (m > (double)p) {
        double ld;
        if (tr == 0.0)
            return m * log((h->alpha * h->beta) / m);
        for (k = 0; k < p * p; k++)
            A[k] = W[k] / m;
        if (!logdet_pd(A, p, b, h->ipiv, &ld))
            return m * log(base); /* a singular W: the trace term alone */
        if (ld <= 0.0)
            return m * log(exp(ld) + base);
        return m * (log1p(exp(-ld) * base) + ld);
    }
    return m * log(base);
}

/* a row's least cost over columns < lg, and the first column holding it */
HC_INLINE void row_min(HC *h, Py_ssize_t r, Py_ssize_t lg)
{
    const double *row = h->D + r * h->n;
    double m = INFINITY;
    Py_ssize_t arg = 0, c;
    for (c = 0; c < lg; c++)
        if (row[c] < m) {
            m = row[c];
            arg = c;
        }
    h->rowmin[r] = m;
    h->rowarg[r] = arg;
}

/* the whole merge sequence; returns 0, or -1 when no pair can be chosen
 * (non-finite costs) */
HC_INLINE int hc_body(HC *h)
{
    const Py_ssize_t n = h->n, p = h->p, pp = p * p;
    const double alpha = h->alpha, beta = h->beta, ablog = h->ablog;
    double *D = h->D, *size = h->size, *mean = h->mean, *W = h->W, *tr = h->tr, *term = h->term;
    double *rowmin = h->rowmin;
    Py_ssize_t *rowarg = h->rowarg;
    int64_t *name = h->name;
    unsigned char *stale = h->stale;
    double *dd = h->work, *Wij = dd + p, *A = Wij + pp, *col = A + pp;
    Py_ssize_t r, c, k, a, b, step, lg = n;

    for (r = 0; r < n; r++) {
        size[r] = 1.0;
        tr[r] = 0.0;
        term[r] = ablog;
        name[r] = (int64_t)(r + 1);
        memcpy(mean + r * p, h->Z + r * p, sizeof(double) * (size_t)p);
    }
    if (!h->eii)
        memset(W, 0, sizeof(double) * (size_t)(n * pp));
    for (r = 0; r < n; r++) {
        double *row = D + r * n;
        const double *zr = h->Z + r * p;
        for (c = 0; c <= r; c++)
            row[c] = INFINITY;
        for (c = r + 1; c < n; c++) {
            const double *zc = h->Z + c * p;
            if (!h->eii) { /* singletons as mclust evaluates them: v = (z_r - z_c) / sqrt 2 */
                double t = 0.0;
                for (k = 0; k < p; k++) {
                    double v = (zr[k] - zc[k]) * RTHALF;
                    t = t + v * v;
                }
                row[c] = 2.0 * log((beta * (t + alpha)) / 2.0) - (ablog + ablog);
            } else {
                for (k = 0; k < p; k++)
                    dd[k] = zr[k] - zc[k];
                row[c] = 0.5 * einsum_sq(dd, p);
            }
        }
        row_min(h, r, n);
    }

    for (step = 0; step < n - 1; step++) {
        Py_ssize_t i = -1, j = -1, last;
        double best = INFINITY;
        int found = 0;
        for (r = 0; r < lg; r++)
            if (!found || rowmin[r] < best) {
                best = rowmin[r];
                found = 1;
            }
        /* the largest j, then the largest i, among the pairs at the least cost */
        for (r = 0; r < lg; r++) {
            if (rowmin[r] != best)
                continue;
            const double *row = D + r * n;
            for (c = lg - 1; c > j; c--)
                if (row[c] == best) {
                    j = c;
                    break;
                }
        }
        if (j >= 0)
            for (r = lg - 1; r >= 0; r--)
                if (D[r * n + j] == best) {
                    i = r;
                    break;
                }
        if (i < 0 || j < 0 || i >= j)
            return -1;
        int64_t ni64 = name[i], nj64 = name[j];
        h->pairs[2 * step] = ni64 < nj64 ? ni64 : nj64;
        h->pairs[2 * step + 1] = ni64 < nj64 ? nj64 : ni64;
        if (lg == 2)
            break;

        /* merge j into i */
        {
            double ni = size[i], nj = size[j], nij = ni + nj;
            double *mi = mean + i * p, *mj = mean + j * p;
            for (k = 0; k < p; k++)
                dd[k] = mi[k] - mj[k];
            double coef = (ni * nj) / nij;
            tr[i] = (tr[i] + tr[j]) + coef * fma_sq(dd, p);
            if (!h->eii) {
                double *Wi = W + i * pp, *Wj = W + j * pp;
                for (a = 0; a < p; a++)
                    for (b = 0; b < p; b++)
                        Wi[a * p + b] = (Wi[a * p + b] + Wj[a * p + b]) + coef * (dd[a] * dd[b]);
            }
            for (k = 0; k < p; k++)
                mi[k] = (ni * mi[k] + nj * mj[k]) / nij;
            size[i] = nij;
            name[i] = ni64 < nj64 ? ni64 : nj64;
        }
        last = lg - 1;
        if (j != last) { /* the last cluster moves into position j */
            size[j] = size[last];
            tr[j] = tr[last];
            term[j] = term[last];
            name[j] = name[last];
            memcpy(mean + j * p, mean + last * p, sizeof(double) * (size_t)p);
            if (!h->eii)
                memcpy(W + j * pp, W + last * pp, sizeof(double) * (size_t)pp);
            /* pair (k, last) becomes pair (min(k, j), max(k, j)) */
            for (r = 0; r < j; r++)
                D[r * n + j] = D[r * n + last];
            for (c = j + 1; c < last; c++)
                D[j * n + c] = D[c * n + last];
        }
        for (c = 0; c < n; c++)
            D[last * n + c] = INFINITY;
        for (r = 0; r < n; r++)
            D[r * n + last] = INFINITY;
        lg -= 1;

        /* rows whose least cost sat in a changed column i, j or last: recomputed
           below with the new costs; the others can only gain column j's new values */
        for (r = 0; r < lg; r++)
            stale[r] = (rowarg[r] == i || rowarg[r] == j || rowarg[r] == last);
        stale[i] = 1;
        if (j < lg) {
            stale[j] = 1;
            for (r = 0; r < j; r++)
                if (!stale[r] && D[r * n + j] < rowmin[r]) {
                    rowmin[r] = D[r * n + j];
                    rowarg[r] = j;
                }
        }
        if (lg < 2)
            continue;
        /* the merged cluster's term and its costs with every other cluster */
        double si = size[i], *mi = mean + i * p, *Wi = W + i * pp;
        if (!h->eii)
            term[i] = vvv_term(h, si, Wi, tr[i], A, col);
        for (k = 0; k < lg; k++) {
            if (k == i)
                continue;
            const double *mk = mean + k * p;
            double sk = size[k], cost;
            for (c = 0; c < p; c++)
                dd[c] = mk[c] - mi[c];
            if (!h->eii) {
                double m = si + sk, cc = (si * sk) / m;
                double trij = (tr[i] + tr[k]) + cc * einsum_sq(dd, p);
                const double *Wk = W + k * pp;
                for (a = 0; a < p; a++)
                    for (b = 0; b < p; b++)
                        Wij[a * p + b] = (Wi[a * p + b] + Wk[a * p + b]) + cc * (dd[a] * dd[b]);
                cost = vvv_term(h, m, Wij, trij, A, col) - (term[i] + term[k]);
            } else {
                cost = ((si * sk) / (si + sk)) * einsum_sq(dd, p);
            }
            if (k < i) {
                D[k * n + i] = cost;
                if (!stale[k] && cost < rowmin[k]) { /* rows above i gain column i's new cost */
                    rowmin[k] = cost;
                    rowarg[k] = i;
                }
            } else {
                D[i * n + k] = cost;
            }
        }
        for (r = 0; r < lg; r++)
            if (stale[r])
                row_min(h, r, lg);
    }
    return 0;
}

/* The same body twice: with fused multiply-add instructions where the CPU
   has them, else with the C library's fma() (the same values, slower). */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define HC_FMA_DISPATCH 1
__attribute__((target("fma"))) static int hc_run_fma(HC *h) { return hc_body(h); }
static int cpu_fma = -1;
#endif
static int hc_run_plain(HC *h) { return hc_body(h); }

static int hc_run(HC *h)
{
#ifdef HC_FMA_DISPATCH
    if (cpu_fma < 0) {
        __builtin_cpu_init();
        cpu_fma = __builtin_cpu_supports("fma") ? 1 : 0;
    }
    if (cpu_fma)
        return hc_run_fma(h);
#endif
    return hc_run_plain(h);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

static PyObject *hc_pairs(PyObject *self, PyObject *args)
{
    Py_buffer bz, bpairs;
    Py_ssize_t n, p;
    int model;
    double alpha, beta;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*w*nnidd", &bz, &bpairs, &n, &p, &model, &alpha, &beta))
        return NULL;
    PyObject *result = NULL;
    HC h;
    memset(&h, 0, sizeof(h));
    if (n < 2 || p < 1 || (model != 0 && model != 1)) {
        PyErr_Format(PyExc_ValueError,
                     "hc_pairs: needs n >= 2 rows, p >= 1 columns and model 0 ('VVV') or 1 ('EII'); "
                     "got n=%zd, p=%zd, model=%d", n, p, model);
        goto release;
    }
    if (!(alpha > 0.0) || !(beta > 0.0) || !isfinite(alpha) || !isfinite(beta)) {
        PyErr_Format(PyExc_ValueError, "hc_pairs: alpha and beta must be finite and positive; got %R, %R",
                     PyTuple_GET_ITEM(args, 5), PyTuple_GET_ITEM(args, 6));
        goto release;
    }
    if (bz.len != n * p * (Py_ssize_t)sizeof(double)) {
        PyErr_Format(PyExc_ValueError, "hc_pairs: Z holds %zd bytes; expected %zd x %zd float64 values",
                     bz.len, n, p);
        goto release;
    }
    if (bpairs.len != (n - 1) * 2 * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_Format(PyExc_ValueError, "hc_pairs: pairs holds %zd bytes; expected (%zd, 2) int64 values",
                     bpairs.len, n - 1);
        goto release;
    }
    if ((double)n * (double)n * 8.0 > (double)PY_SSIZE_T_MAX
        || (double)n * (double)p * (double)p * 8.0 > (double)PY_SSIZE_T_MAX) {
        PyErr_Format(PyExc_MemoryError, "hc_pairs: n = %zd rows need an n x n cost matrix too large to hold", n);
        goto release;
    }
    h.n = n;
    h.p = p;
    h.eii = model;
    h.alpha = alpha;
    h.beta = beta;
    h.Z = (const double *)bz.buf;
    h.pairs = (int64_t *)bpairs.buf;
    int status = 0, nomem = 0;

    Py_BEGIN_ALLOW_THREADS
    h.ablog = log(beta * alpha);
    h.D = (double *)malloc(sizeof(double) * (size_t)n * (size_t)n);
    h.size = (double *)malloc(sizeof(double) * (size_t)n);
    h.mean = (double *)malloc(sizeof(double) * (size_t)(n * p));
    h.W = model == 0 ? (double *)malloc(sizeof(double) * (size_t)n * (size_t)(p * p)) : NULL;
    h.tr = (double *)malloc(sizeof(double) * (size_t)n);
    h.term = (double *)malloc(sizeof(double) * (size_t)n);
    h.rowmin = (double *)malloc(sizeof(double) * (size_t)n);
    h.rowarg = (Py_ssize_t *)malloc(sizeof(Py_ssize_t) * (size_t)n);
    h.name = (int64_t *)malloc(sizeof(int64_t) * (size_t)n);
    h.stale = (unsigned char *)malloc((size_t)n);
    h.work = (double *)malloc(sizeof(double) * (size_t)(2 * p + 2 * p * p));
    h.ipiv = (Py_ssize_t *)malloc(sizeof(Py_ssize_t) * (size_t)p);
    if (!h.D || !h.size || !h.mean || (model == 0 && !h.W) || !h.tr || !h.term || !h.rowmin || !h.rowarg
        || !h.name || !h.stale || !h.work || !h.ipiv)
        nomem = 1;
    else
        status = hc_run(&h);
    Py_END_ALLOW_THREADS

    if (nomem)
        PyErr_NoMemory();
    else if (status != 0)
        PyErr_SetString(PyExc_ValueError,
                        "hc_pairs: the merge costs are not finite (NaN or infinite values in Z, or costs "
                        "that overflow); pass finite data of moderate scale (e.g. standardized)");
    else
    {
        Py_INCREF(Py_None);
        result = Py_None;
    }
    free(h.D);
    free(h.size);
    free(h.mean);
    free(h.W);
    free(h.tr);
    free(h.term);
    free(h.rowmin);
    free(h.rowarg);
    free(h.name);
    free(h.stale);
    free(h.work);
    free(h.ipiv);
release:
    PyBuffer_Release(&bz);
    PyBuffer_Release(&bpairs);
    return result;
}

static PyMethodDef methods[] = {
    {"hc_pairs", hc_pairs, METH_VARARGS,
     "hc_pairs(Z, pairs, n, p, model, alpha, beta): mclust's hc merge sequence of the rows of Z\n"
     "(n x p float64, C order) into pairs ((n - 1) x 2 int64), model 0 'VVV' or 1 'EII'; alpha is\n"
     "the scaled constant (alpha trace(W_data) / (n p), at least machine epsilon). See\n"
     "emix.core.mclust_hc.hc_pairs."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hc_kernels",
                                    "mclust's hierarchical clustering merges (emix.core.mclust_hc).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__hc_kernels(void) { return PyModule_Create(&module); }
