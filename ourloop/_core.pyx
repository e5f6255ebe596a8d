# cython: language_level=3
"""ourloop._core: the one extension module of ourloop.

This file only gathers the pieces; each lives in the file named after it:

  handles/common.pyx  what all libuv handle wrappers share
  handle.pyx          Handle / TimerHandle (what call_soon & co. return)
  handles/timer.pyx   the timer heap behind one uv_timer_t
  handles/async_.pyx  the uv_async_t that call_soon_threadsafe() wakes
  handles/poll.pyx    uv_poll_t fd watchers: add_reader/add_writer and the
                      signal wake-up fd
  handles/stream.pyx  StreamTransport: an asyncio.Transport over uv_stream_t
  handles/pipe.pyx    PipeTransport over uv_pipe_t (Unix stream sockets),
                      the read and write pipe transports
  handles/tcp.pyx     TCPTransport and TCPListener over uv_tcp_t
  handles/udp.pyx     UDPTransport over uv_udp_t (create_datagram_endpoint)
  tls.pyx             SSLProtocol and SSLTransport: TLS over any asyncio
                      stream transport (ssl.SSLObject over MemoryBIOs)
  handles/process.pyx child processes: spawn-error reads, reaping
  syscalls.pyx        stat/unlink/sendfile for the Python layer, as C calls
  loop.pyx            LoopCore, the libuv-driven loop itself

ourloop/_loop.py builds the public ourloop.Loop on top of LoopCore.
"""

cimport cython
from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, free
from libc.math cimport INFINITY
from cpython.contextvars cimport PyContext_CopyCurrent, PyContext_Enter, PyContext_Exit
from cpython.exc cimport PyErr_CheckSignals
from cpython.pythread cimport PyThread_get_thread_ident

from ourloop.includes cimport uv
from ourloop.includes.uv cimport (
    OURLOOP_DEBUG_BUILD, ourloop_count_open, ourloop_count_close,
    ourloop_handles_opened, ourloop_handles_closed, ourloop_timeout_ms,
)

import errno
import os
import signal
import socket
import sys
import threading
import weakref

from asyncio import coroutines, events, format_helpers, futures, tasks
from asyncio.events import Handle as _asyncio_Handle, TimerHandle as _asyncio_TimerHandle
from asyncio.log import logger


include "handles/common.pyx"
include "handle.pyx"
include "handles/timer.pyx"
include "handles/async_.pyx"
include "handles/poll.pyx"
include "handles/stream.pyx"
include "handles/pipe.pyx"
include "handles/tcp.pyx"
include "handles/udp.pyx"
include "tls.pyx"
include "handles/process.pyx"
include "syscalls.pyx"
include "loop.pyx"


def libuv_version():
    """The version of the libuv ourloop runs on, as a string."""
    return uv.uv_version_string().decode()
