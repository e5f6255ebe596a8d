# Declarations of callbacks.h, the C of the per-callback path (handle.pyx,
# loop.pyx).

from cpython.object cimport PyObject


cdef extern from "callbacks.h":
    # 0, or -1 with the callback's exception set (context left).
    int ourloop_call_in_context(object callback, object args, object context) noexcept
    int ourloop_raise_pending() except -1
    object ourloop_list_take(list lst, Py_ssize_t i)
    void ourloop_list_forget_taken(list lst) noexcept
    int ourloop_list_append(list lst, object item) except -1
    bint ourloop_list_append_if_room(list lst, object item) noexcept
    # a new reference, or NULL with the exception set
    PyObject* ourloop_call_method1(object obj, object name, object arg) noexcept
    bint ourloop_has_weakrefs(object o) noexcept
    tuple ourloop_tuple_from_array(PyObject** items, Py_ssize_t n)
    object ourloop_call_with_self(object func, object self, PyObject** args,
                                  Py_ssize_t nargs, PyObject* kwnames)
    # (ctx: a borrowed reference, or NULL)
    bint ourloop_context_sparable(PyObject* ctx) noexcept
    void ourloop_context_empty(PyObject* ctx, PyObject* empty) noexcept
    # a new reference (NULL: the exception set)
    object ourloop_context_copy_current(PyObject* spare)
    # a new reference, or NULL without an exception: copy at once instead
    PyObject* ourloop_context_current_vars() noexcept
    # a new reference (NULL: the exception set)
    object ourloop_context_from_vars(object vars)
