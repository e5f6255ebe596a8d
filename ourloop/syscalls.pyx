# The few system calls that the Python layer makes in the loop thread, made
# here as C calls (the GIL released around each, as the os module does).
#
# Tools that detect blocking calls in an event loop thread (blockbuster, used
# by aiohttp's and anyio's test suites) wrap os.stat, os.unlink, os.sendfile
# and their like, and excuse them only when the stdlib loop's own functions
# make them (by file and function name). ourloop makes the same calls from
# its own functions, which no such tool can excuse, so it makes them below
# the Python level instead; each behaves as its os counterpart, errors
# included (the OSError subclass of errno, with the file name).

from cpython.exc cimport PyErr_SetFromErrno, PyErr_SetFromErrnoWithFilenameObject
from posix.stat cimport struct_stat, stat as c_stat
from posix.unistd cimport unlink as c_unlink
from posix.types cimport off_t

from ourloop.includes.platform cimport ourloop_sendfile, OURLOOP_HAVE_SENDFILE

import os as _os


def _stat_mode_ino(path):
    """(st_mode, st_ino) of `path` (str, bytes or path-like), as os.stat()
    gives them; raises os.stat()'s OSError."""
    cdef bytes encoded = _os.fsencode(path)
    cdef const char* cpath = encoded
    cdef struct_stat st
    cdef int r
    if b'\0' in encoded:
        raise ValueError('embedded null byte')
    with nogil:
        r = c_stat(cpath, &st)
    if r != 0:
        PyErr_SetFromErrnoWithFilenameObject(OSError, path)
    return st.st_mode, st.st_ino


def _unlink(path):
    """os.unlink(path)."""
    cdef bytes encoded = _os.fsencode(path)
    cdef const char* cpath = encoded
    cdef int r
    if b'\0' in encoded:
        raise ValueError('embedded null byte')
    with nogil:
        r = c_unlink(cpath)
    if r != 0:
        PyErr_SetFromErrnoWithFilenameObject(OSError, path)


# Whether _sendfile (and loop.sendfile's native path) has a sendfile(2) to
# call on this platform and build (platform.h); without it _sendfile.py
# raises the stdlib's "os.sendfile() is not available".
_HAVE_SENDFILE = bool(OURLOOP_HAVE_SENDFILE)


def _sendfile(int out_fd, int in_fd, off_t offset, size_t count):
    """os.sendfile(out_fd, in_fd, offset, count): the number of bytes sent;
    raises os.sendfile()'s OSError (BlockingIOError for EAGAIN; ENOSYS
    where _HAVE_SENDFILE is false)."""
    cdef ssize_t n
    with nogil:
        n = ourloop_sendfile(out_fd, in_fd, &offset, count)
    if n < 0:
        PyErr_SetFromErrno(OSError)
    return n
