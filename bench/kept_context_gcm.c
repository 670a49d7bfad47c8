/* Bench experiment only, never part of the package (bench/kept_context_tree.py builds it
   into a copy of the tree): AES-256-GCM with one EVP context kept per object, initialised
   with the key once, so a record only sets its 12-byte IV, then AAD, data, final and tag.
   Measures how much of a record's cost is `cryptography`'s per-call context copy (see
   bench/RESULTS.md). Gcm(key, encrypting) -> .encrypt(nonce, data, aad) -> bytes (with the
   tag) / .decrypt_into(nonce, sealed, aad, buf) (ValueError for a bad tag). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>

typedef struct { PyObject_HEAD EVP_CIPHER_CTX *ctx; int enc; } Gcm;

static void gcm_dealloc(Gcm *self) { if (self->ctx) EVP_CIPHER_CTX_free(self->ctx); Py_TYPE(self)->tp_free(self); }

static int gcm_init(Gcm *self, PyObject *args, PyObject *kw) {
    Py_buffer key; int enc;
    if (!PyArg_ParseTuple(args, "y*p", &key, &enc)) return -1;
    if (key.len != 32) { PyBuffer_Release(&key); PyErr_SetString(PyExc_ValueError, "32-byte key"); return -1; }
    self->ctx = EVP_CIPHER_CTX_new(); self->enc = enc;
    int ok = EVP_CipherInit_ex(self->ctx, EVP_aes_256_gcm(), NULL, key.buf, NULL, enc);
    PyBuffer_Release(&key);
    if (ok != 1) { PyErr_SetString(PyExc_RuntimeError, "init"); return -1; }
    return 0;
}

static PyObject *gcm_seal(Gcm *self, PyObject *const *args, Py_ssize_t n) {
    Py_buffer iv, data, aad; int outl;
    if (n != 3 || PyObject_GetBuffer(args[0], &iv, PyBUF_SIMPLE)) return NULL;
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE)) { PyBuffer_Release(&iv); return NULL; }
    if (PyObject_GetBuffer(args[2], &aad, PyBUF_SIMPLE)) { PyBuffer_Release(&iv); PyBuffer_Release(&data); return NULL; }
    PyObject *out = PyBytes_FromStringAndSize(NULL, data.len + 16);
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    int ok = iv.len == 12 && EVP_CipherInit_ex(self->ctx, NULL, NULL, NULL, iv.buf, 1) == 1
        && EVP_CipherUpdate(self->ctx, NULL, &outl, aad.buf, (int)aad.len) == 1
        && EVP_CipherUpdate(self->ctx, o, &outl, data.buf, (int)data.len) == 1
        && EVP_CipherFinal_ex(self->ctx, o + data.len, &outl) == 1
        && EVP_CIPHER_CTX_ctrl(self->ctx, EVP_CTRL_GCM_GET_TAG, 16, o + data.len) == 1;
    PyBuffer_Release(&iv); PyBuffer_Release(&data); PyBuffer_Release(&aad);
    if (!ok) { Py_DECREF(out); PyErr_SetString(PyExc_RuntimeError, "seal"); return NULL; }
    return out;
}

static PyObject *gcm_open_into(Gcm *self, PyObject *const *args, Py_ssize_t n) {
    Py_buffer iv, data, aad, buf; int outl;
    if (n != 4 || PyObject_GetBuffer(args[0], &iv, PyBUF_SIMPLE)) return NULL;
    if (PyObject_GetBuffer(args[1], &data, PyBUF_SIMPLE)) { PyBuffer_Release(&iv); return NULL; }
    if (PyObject_GetBuffer(args[2], &aad, PyBUF_SIMPLE)) { PyBuffer_Release(&iv); PyBuffer_Release(&data); return NULL; }
    if (PyObject_GetBuffer(args[3], &buf, PyBUF_WRITABLE)) { PyBuffer_Release(&iv); PyBuffer_Release(&data); PyBuffer_Release(&aad); return NULL; }
    Py_ssize_t size = data.len - 16;
    int ok = iv.len == 12 && size >= 0 && buf.len == size
        && EVP_CipherInit_ex(self->ctx, NULL, NULL, NULL, iv.buf, 0) == 1
        && EVP_CIPHER_CTX_ctrl(self->ctx, EVP_CTRL_GCM_SET_TAG, 16, (char *)data.buf + size) == 1
        && EVP_CipherUpdate(self->ctx, NULL, &outl, aad.buf, (int)aad.len) == 1
        && EVP_CipherUpdate(self->ctx, buf.buf, &outl, data.buf, (int)size) == 1
        && EVP_CipherFinal_ex(self->ctx, (unsigned char *)buf.buf + size, &outl) == 1;
    PyBuffer_Release(&iv); PyBuffer_Release(&data); PyBuffer_Release(&aad); PyBuffer_Release(&buf);
    if (!ok) { PyErr_SetString(PyExc_ValueError, "invalid tag"); return NULL; }
    Py_RETURN_NONE;
}

static PyMethodDef gcm_methods[] = {
    {"encrypt", (PyCFunction)(void (*)(void))gcm_seal, METH_FASTCALL, NULL},
    {"decrypt_into", (PyCFunction)(void (*)(void))gcm_open_into, METH_FASTCALL, NULL},
    {NULL}};

static PyTypeObject GcmType = {PyVarObject_HEAD_INIT(NULL, 0) .tp_name = "kept_context_gcm.Gcm",
    .tp_basicsize = sizeof(Gcm), .tp_flags = Py_TPFLAGS_DEFAULT, .tp_new = PyType_GenericNew,
    .tp_init = (initproc)gcm_init, .tp_dealloc = (destructor)gcm_dealloc, .tp_methods = gcm_methods};

static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "kept_context_gcm", NULL, -1, NULL};

PyMODINIT_FUNC PyInit_kept_context_gcm(void) {
    if (PyType_Ready(&GcmType) < 0) return NULL;
    PyObject *m = PyModule_Create(&mod);
    Py_INCREF(&GcmType); PyModule_AddObject(m, "Gcm", (PyObject *)&GcmType);
    return m;
}
