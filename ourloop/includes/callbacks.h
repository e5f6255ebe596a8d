/* C of the per-callback path (handle.pyx, loop.pyx): running a callback in
 * its context, and walking the ready queue without reference-count churn.
 *
 * ourloop_call_in_context() is what Handle._run does in the stdlib,
 * context.run(callback, *args), minus the argument tuple: the context is
 * entered, the callback called through vectorcall, the context left. On an
 * exception it returns -1 with the exception set and the context already
 * left, as context.run() leaves it; the caller reports it.
 */
#ifndef OURLOOP_CALLBACKS_H
#define OURLOOP_CALLBACKS_H

#include <Python.h>
#include "compat.h"     /* the Context layout (OURLOOP_CONTEXT_PEEK) */

static inline int
ourloop_call_in_context(PyObject *callback, PyObject *args, PyObject *context)
{
    PyObject *res, *type, *value, *tb;
    if (PyContext_Enter(context) < 0)
        return -1;
    /* The handle may drop its callback and arguments while the callback
     * runs (it can cancel itself): hold them for the call. */
    Py_INCREF(callback);
    if (args == Py_None || PyTuple_GET_SIZE(args) == 0) {
        res = PyObject_Vectorcall(callback, NULL, 0, NULL);
    } else {
        Py_INCREF(args);
        res = PyObject_Vectorcall(callback, &PyTuple_GET_ITEM(args, 0),
                                  (size_t)PyTuple_GET_SIZE(args), NULL);
        Py_DECREF(args);
    }
    Py_DECREF(callback);
    if (res == NULL) {
        PyErr_Fetch(&type, &value, &tb);
        if (PyContext_Exit(context) < 0) {
            /* As context.run(): the exit's error wins. */
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
            return -1;
        }
        PyErr_Restore(type, value, tb);
        return -1;
    }
    Py_DECREF(res);
    return PyContext_Exit(context);
}

/* Always -1: declared `except -1` on the Cython side, it turns "an
 * exception is set" into a Cython exception that a try/except can catch. */
static inline int
ourloop_raise_pending(void)
{
    return -1;
}

/* The item at i of a list, with the list's reference: the slot becomes
 * NULL (a list's GC traversal and deallocation skip NULL slots). */
static inline PyObject *
ourloop_list_take(PyObject *list, Py_ssize_t i)
{
    PyObject *item = PyList_GET_ITEM(list, i);
    PyList_SET_ITEM(list, i, NULL);
    return item;
}

/* Empty a list whose slots [0, n) were all taken, keeping its storage for
 * the next batch (list.clear() would free it). */
static inline void
ourloop_list_forget_taken(PyObject *list)
{
    Py_SET_SIZE(list, 0);
}

/* list.append(item) if the list has room (1), else nothing (0): cannot
 * fail. */
static inline int
ourloop_list_append_if_room(PyObject *list, PyObject *item)
{
    PyListObject *l = (PyListObject *)list;
    Py_ssize_t n = Py_SIZE(l);
    if (n < l->allocated) {
        Py_INCREF(item);
        PyList_SET_ITEM(list, n, item);
        Py_SET_SIZE(l, n + 1);
        return 1;
    }
    return 0;
}

/* list.append(item): no call when the list has room, no growth check
 * beyond the one comparison (Cython's own fast path also wants the list
 * more than half full, which the ready list, emptied every iteration,
 * never is). */
static inline int
ourloop_list_append(PyObject *list, PyObject *item)
{
    if (ourloop_list_append_if_room(list, item))
        return 0;
    return PyList_Append(list, item);
}

/* obj.name(arg) (the method looked up as an attribute, as Cython's call
 * would): a new reference, or NULL with the exception set, which the
 * caller reports (so that the per-read path sets up no try). */
static inline PyObject *
ourloop_call_method1(PyObject *obj, PyObject *name, PyObject *arg)
{
    PyObject *args[2] = {obj, arg};
    return PyObject_VectorcallMethod(name, args, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* Whether any weak reference to o exists (its type has weakref support). */
static inline int
ourloop_has_weakrefs(PyObject *o)
{
    Py_ssize_t offset = Py_TYPE(o)->tp_weaklistoffset;
    return offset > 0 && *(PyObject **)((char *)o + offset) != NULL;
}

/* The empty tuple (a borrowed reference, NULL until first asked for). */
static PyObject *ourloop_empty_tuple = NULL;

/* A tuple of the n items at items (new references). No arguments, the
 * common case, is the empty tuple without a call. */
static inline PyObject *
ourloop_tuple_from_array(PyObject *const *items, Py_ssize_t n)
{
    PyObject *t;
    Py_ssize_t i;
    if (n == 0 && ourloop_empty_tuple != NULL) {
        Py_INCREF(ourloop_empty_tuple);
        return ourloop_empty_tuple;
    }
    t = PyTuple_New(n);
    if (t == NULL)
        return NULL;
    if (n == 0) {
        /* (Kept with a reference of its own.) */
        Py_INCREF(t);
        ourloop_empty_tuple = t;
    }
    for (i = 0; i < n; i++) {
        Py_INCREF(items[i]);
        PyTuple_SET_ITEM(t, i, items[i]);
    }
    return t;
}

/* func(self, *args, **kw) for a METH_FASTCALL | METH_KEYWORDS call's
 * arguments (args: nargs positional values, then one per kwnames). */
static PyObject *
ourloop_call_with_self(PyObject *func, PyObject *self, PyObject *const *args,
                       Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *small[8], **stack = small, *res;
    if (nargs + nkw + 1 > 8) {
        stack = PyMem_Malloc((size_t)(nargs + nkw + 1) * sizeof(PyObject *));
        if (stack == NULL)
            return PyErr_NoMemory();
    }
    stack[0] = self;
    if (nargs + nkw)
        memcpy(stack + 1, args, (size_t)(nargs + nkw) * sizeof(PyObject *));
    res = PyObject_Vectorcall(func, stack, (size_t)(nargs + 1), kwnames);
    if (stack != small)
        PyMem_Free(stack);
    return res;
}

/* Spare contexts. A Handle that goes back to the spare stack (handle.pyx)
 * keeps its context when only the handle refers to it, its variables
 * replaced by `empty` (an empty mapping: it keeps no value alive), and
 * call_soon() makes the copy of the current context in it, where
 * PyContext_CopyCurrent() would allocate one: a copy per call_soon() is a
 * GC-tracked allocation, and a burst of them (past the interpreter's 255
 * free contexts) sets off garbage collections that traverse them all.
 * A spare context is a Context nobody else can see: exact type, only the
 * handle's reference, no weak reference, not entered. Its identity is new
 * to everything that can look at it, as a fresh copy's is. */

/* Whether ctx (the handle's reference only) can be kept as a spare. */
static inline int
ourloop_context_sparable(PyObject *ctx)
{
#if OURLOOP_CONTEXT_PEEK
    ourloop_context_layout *c = (ourloop_context_layout *)ctx;
    return Py_TYPE(ctx) == &PyContext_Type && Py_REFCNT(ctx) == 1
        && c->ctx_weakreflist == NULL && !c->ctx_entered;
#else
    (void)ctx;
    return 0;
#endif
}

/* Make ctx (sparable) empty: its variables become `empty`'s. What it
 * held is released last (which may run finalizers). */
static inline void
ourloop_context_empty(PyObject *ctx, PyObject *empty)
{
#if OURLOOP_CONTEXT_PEEK
    ourloop_context_layout *c = (ourloop_context_layout *)ctx;
    PyObject *old = c->ctx_vars;
    PyObject *vars = ((ourloop_context_layout *)empty)->ctx_vars;
    Py_INCREF(vars);
    c->ctx_vars = vars;
    Py_DECREF(old);
#else
    (void)ctx; (void)empty;
#endif
}

/* A copy of the current context (a new reference, NULL with an exception
 * set): made in `spare` (a spare context, or NULL) when it is still the
 * caller's alone, else by PyContext_CopyCurrent(). */
static inline PyObject *
ourloop_context_copy_current(PyObject *spare)
{
#if OURLOOP_CONTEXT_PEEK
    PyObject *cur;
    if (spare != NULL && Py_REFCNT(spare) == 1 && Py_TYPE(spare) == &PyContext_Type
            && ((ourloop_context_layout *)spare)->ctx_weakreflist == NULL
            && !((ourloop_context_layout *)spare)->ctx_entered
            && (cur = PyThreadState_GET()->context) != NULL) {
        ourloop_context_layout *c = (ourloop_context_layout *)spare;
        PyObject *old = c->ctx_vars;
        PyObject *vars = ((ourloop_context_layout *)cur)->ctx_vars;
        Py_INCREF(vars);
        c->ctx_vars = vars;
        Py_DECREF(old);
        Py_INCREF(spare);
        return spare;
    }
#else
    (void)spare;
#endif
    return PyContext_CopyCurrent();
}

/* Copies made late. A timer's callback runs in a copy of the context that
 * was current when it was scheduled; call_later() and call_at() keep the
 * variables of that context (an immutable mapping, which a copy would share)
 * and the copy is made when the timer runs (LoopCore._run_ready), or when
 * someone asks for it first (handle.pyx's _context_of()). Pending timers
 * hold no Context of their own: one GC-tracked allocation less per timer,
 * so bursts of timers set off half as many garbage collections, each
 * traversing fewer objects; and as a timer's copy is made just before its
 * callback and freed with the timer after it, due timers reuse the
 * interpreter's free contexts one after the other. The
 * copy is what PyContext_CopyCurrent() made then: the same variables, a new
 * identity nobody could have seen before. */

/* The current context's variables (a new reference), or NULL (no exception)
 * where they cannot be kept: no current context yet, or an unknown layout.
 * The caller then copies the context at once. */
static inline PyObject *
ourloop_context_current_vars(void)
{
#if OURLOOP_CONTEXT_PEEK
    PyObject *cur = PyThreadState_GET()->context;
    if (cur != NULL && Py_TYPE(cur) == &PyContext_Type) {
        PyObject *vars = ((ourloop_context_layout *)cur)->ctx_vars;
        Py_INCREF(vars);
        return vars;
    }
#endif
    return NULL;
}

/* A new context whose variables are `vars` (from
 * ourloop_context_current_vars()): a new reference, NULL with an exception
 * set. */
static inline PyObject *
ourloop_context_from_vars(PyObject *vars)
{
#if OURLOOP_CONTEXT_PEEK
    PyObject *ctx = PyContext_New();
    if (ctx != NULL) {
        ourloop_context_layout *c = (ourloop_context_layout *)ctx;
        PyObject *old = c->ctx_vars;
        Py_INCREF(vars);
        c->ctx_vars = vars;
        Py_DECREF(old);
    }
    return ctx;
#else
    (void)vars;
    PyErr_SetString(PyExc_SystemError, "ourloop: context variables cannot be kept here");
    return NULL;
#endif
}

#endif
