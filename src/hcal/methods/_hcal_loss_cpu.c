/* HCAL's training losses on the CPU in one C call: hcal.methods._hcal_loss's "kernel" layout.
 *
 * Why: on a CPU HCAL's head is a few dozen tiny tensor operations, and after a backbone's
 * forward pass each of them runs with cold caches (~10-70 us apiece on a 2-core server), which
 * alone cost more than 5 % of a small CNN's training step. Here the whole loss (forward, or the
 * backward with the forward recomputed) is one loop nest over memory the caller owns.
 *
 * The Python side (hcal.methods._hcal_loss) passes contiguous tensors' data pointers and checks
 * shapes and dtypes; this module checks the labels' range (it indexes with them). Built by
 * pip install (setuptools, optional: without a C compiler hcal uses its PyTorch layouts).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HCAL_EPS 1e-12 /* F.normalize's default */

/* GCC on x86-64: the kernel is compiled twice, for AVX2 + FMA machines and for any x86-64, and
 * the loader picks one at start-up (the small vector helpers inline into each copy). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define HCAL_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define HCAL_CLONES
#endif
#define MAX_LEVELS 64

typedef struct {
    int64_t n, d, m, embeds; /* batch, embedding size, levels, projections (1 shared, or m) */
    int64_t sizes[MAX_LEVELS];
    const void *z[MAX_LEVELS]; /* (n, d) projections before normalisation */
    const void *p[MAX_LEVELS]; /* (C_k, d) raw prototypes */
    const void *noise;         /* (sum C_k, d) perturbation noise, or NULL */
    const int64_t *labels;     /* (n, m) class indices */
    double tau;
    int fa;
    const void *grad_losses; /* (m,): backward; NULL: forward */
    void *losses;            /* (m,) forward output */
    void *grad_z[MAX_LEVELS];
    void *grad_p[MAX_LEVELS];
} Problem;

#define T float
#define FN(name) name##_f32
#include "_hcal_loss_cpu.h"
#undef T
#undef FN
#define T double
#define FN(name) name##_f64
#include "_hcal_loss_cpu.h"
#undef T
#undef FN

static int read_pointers(PyObject *seq, const void **out, int64_t want, const char *what)
{
    if (!PyTuple_Check(seq) || PyTuple_GET_SIZE(seq) != want) {
        PyErr_Format(PyExc_ValueError, "%s must be a tuple of %lld addresses", what, (long long)want);
        return -1;
    }
    for (int64_t i = 0; i < want; i++) {
        out[i] = PyLong_AsVoidPtr(PyTuple_GET_ITEM(seq, i));
        if (PyErr_Occurred())
            return -1;
    }
    return 0;
}

PyDoc_STRVAR(run_doc,
             "run(double, n, d, sizes, z, p, noise, labels, tau, fa, grad_losses, losses, grad_z, grad_p)\n\n"
             "Addresses are ints (0 for none). Forward when grad_losses is 0 (writes losses), else backward\n"
             "(writes grad_z and grad_p).");

static PyObject *run(PyObject *self, PyObject *args)
{
    (void)self;
    int is_double, fa;
    Problem pb;
    memset(&pb, 0, sizeof(pb));
    long long n, d;
    PyObject *sizes, *z, *p, *noise, *labels, *grad_losses, *losses, *grad_z, *grad_p;
    if (!PyArg_ParseTuple(args, "pLLO!O!O!OOdpOOOO", &is_double, &n, &d, &PyTuple_Type, &sizes, &PyTuple_Type, &z,
                          &PyTuple_Type, &p, &noise, &labels, &pb.tau, &fa, &grad_losses, &losses, &grad_z, &grad_p))
        return NULL;
    pb.n = n, pb.d = d, pb.fa = fa;
    pb.m = PyTuple_GET_SIZE(sizes);
    pb.embeds = PyTuple_GET_SIZE(z);
    if (pb.m < 1 || pb.m > MAX_LEVELS || (pb.embeds != 1 && pb.embeds != pb.m) || n < 1 || d < 1) {
        PyErr_Format(PyExc_ValueError, "levels must be 1..%d with 1 or m projections, n and d >= 1", MAX_LEVELS);
        return NULL;
    }
    for (int64_t k = 0; k < pb.m; k++) {
        pb.sizes[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(sizes, k));
        if (PyErr_Occurred())
            return NULL;
        if (pb.sizes[k] < 1) {
            PyErr_Format(PyExc_ValueError, "sizes must be >= 1, got %lld at level %lld", (long long)pb.sizes[k],
                         (long long)k + 1);
            return NULL;
        }
    }
    if (read_pointers(z, pb.z, pb.embeds, "z") || read_pointers(p, pb.p, pb.m, "p"))
        return NULL;
    pb.noise = PyLong_AsVoidPtr(noise);
    pb.labels = (const int64_t *)PyLong_AsVoidPtr(labels);
    pb.grad_losses = PyLong_AsVoidPtr(grad_losses);
    pb.losses = PyLong_AsVoidPtr(losses);
    if (PyErr_Occurred())
        return NULL;
    if (pb.grad_losses) {
        if (read_pointers(grad_z, (const void **)pb.grad_z, pb.embeds, "grad_z") ||
            read_pointers(grad_p, (const void **)pb.grad_p, pb.m, "grad_p"))
            return NULL;
    } else if (!pb.losses) {
        PyErr_SetString(PyExc_ValueError, "losses (forward) or grad_losses (backward) must be given");
        return NULL;
    }
    for (int64_t i = 0; i < pb.n; i++) /* the kernel indexes with the labels */
        for (int64_t k = 0; k < pb.m; k++) {
            int64_t c = pb.labels[i * pb.m + k];
            if (c < 0 || c >= pb.sizes[k]) {
                PyErr_Format(PyExc_ValueError, "labels[%lld, %lld] must be in [0, %lld), got %lld", (long long)i,
                             (long long)k, (long long)pb.sizes[k], (long long)c);
                return NULL;
            }
        }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = is_double ? run_f64(&pb) : run_f32(&pb);
    Py_END_ALLOW_THREADS
    if (status != 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {{"run", run, METH_VARARGS, run_doc}, {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_hcal_loss_cpu", "HCAL's training losses on the CPU in one C call (see _hcal_loss.py).", -1,
    methods, NULL, NULL, NULL, NULL};

/* Bumped whenever run()'s arguments or meaning change: hcal ignores a stale build (editable installs
 * do not rebuild on their own) instead of calling it with the wrong arguments. */
#define HCAL_KERNEL_ABI 1

PyMODINIT_FUNC PyInit__hcal_loss_cpu(void)
{
    PyObject *mod = PyModule_Create(&module);
    if (mod && PyModule_AddIntConstant(mod, "ABI", HCAL_KERNEL_ABI) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
