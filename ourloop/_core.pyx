# cython: language_level=3
"""ourloop._core: the one extension module of ourloop.

This file only gathers the pieces; each lives in the file named after it:

  handles/common.pyx  what all libuv handle wrappers share
  handle.pyx          Handle / TimerHandle (what call_soon & co. return)
  handles/timer.pyx   the timer heap behind one uv_timer_t
  handles/async_.pyx  the uv_async_t that call_soon_threadsafe() wakes
  handles/poll.pyx    uv_poll_t fd watchers: add_reader/add_writer and the
                      signal wake-up fd
  sockops.pyx         sock_recv/sock_recv_into/sock_sendall: native calls,
                      edge-triggered waits
  handles/transport.pyx TransportBase: what every transport shares
  handles/stream.pyx  StreamTransport: an asyncio.Transport over uv_stream_t
  handles/pipe.pyx    PipeTransport over uv_pipe_t (Unix stream sockets),
                      the read and write pipe transports
  handles/tcp.pyx     TCPTransport over uv_tcp_t, the socket transports'
                      factory and SocketListener (TCP and Unix sockets)
  handles/udp.pyx     UDPTransport over uv_udp_t (create_datagram_endpoint)
  tls.pyx             SSLProtocol and SSLTransport: TLS over any asyncio
                      stream transport (ssl.SSLObject over MemoryBIOs)
  handles/process.pyx child processes: spawn-error reads, reaping
  syscalls.pyx        stat/unlink/sendfile for the Python layer, as C calls
  loop.pyx            LoopCore, the libuv-driven loop itself

ourloop/_loop.py builds the public ourloop.Loop on top of LoopCore.

Every cdef class is declared in _core.pxd. The included files share one C
module, so a name one of them imports is visible in all that follow; still,
each file states every cimport and import it uses at its top (one name means
one thing everywhere), so that it can be read, moved or reordered on its
own. (Repeating an import in two included files costs nothing: Cython
accepts an identical cimport twice, and a Python import runs once at module
load.)
"""

from ourloop.includes cimport uv


include "handles/common.pyx"
include "handle.pyx"
include "handles/timer.pyx"
include "handles/async_.pyx"
include "handles/poll.pyx"
include "sockops.pyx"
include "handles/transport.pyx"
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


cdef extern from "build_info.h":
    const char* OURLOOP_COMPILER
    const char* OURLOOP_FLAVOUR
    const char* OURLOOP_LIBUV_LINKAGE

from ourloop.includes.platform cimport (
    OURLOOP_SENDFILE_KIND, OURLOOP_ACCEPT_KIND, OURLOOP_CHILD_FD_KIND, OURLOOP_POLL_BACKEND,
    OURLOOP_PIPE_SIZE_KIND, OURLOOP_UDP_RECV_KIND,
    OURLOOP_PLATFORM_FALLBACKS,
)


def _platform_info():
    """What the platform layer (includes/platform.h) compiled to: the
    sendfile(2) used ('linux', 'darwin', 'freebsd' or 'none': the read/write
    fallback), how connections are accepted ('accept4' or 'accept+fcntl'),
    the fd children are watched through ('pidfd', 'kqueue' or 'none': a
    thread per child), the selector whose rules pipes follow ('epoll',
    'kqueue', 'other'), whether busy subprocess pipes can grow ('fcntl':
    F_SETPIPE_SZ, or 'none'), how datagram sockets are read ('recvmmsg':
    up to 8 datagrams a system call, or 'recvfrom') and 'fallbacks':
    'forced' (OURLOOP_PORTABLE=1),
    'none' (every native call) or 'some'."""
    return {
        'sendfile': OURLOOP_SENDFILE_KIND.decode(),
        'accept': OURLOOP_ACCEPT_KIND.decode(),
        'child_fd': OURLOOP_CHILD_FD_KIND.decode(),
        'poll_backend': OURLOOP_POLL_BACKEND.decode(),
        'pipe_size': OURLOOP_PIPE_SIZE_KIND.decode(),
        'udp_recv': OURLOOP_UDP_RECV_KIND.decode(),
        'fallbacks': OURLOOP_PLATFORM_FALLBACKS.decode(),
    }


def _build_info():
    """How this extension was built (for `python -m ourloop`): a dict of
    compiler, flavour ('release', 'debug', 'asan', 'ubsan' or 'asan+ubsan'),
    libuv linkage, the libuv version it was compiled against, and the
    platform layer's fallbacks ('none', 'some' or 'forced': see
    _platform_info())."""
    return {
        'compiler': OURLOOP_COMPILER.decode(),
        'flavour': OURLOOP_FLAVOUR.decode(),
        'libuv_linkage': OURLOOP_LIBUV_LINKAGE.decode(),
        'libuv_compiled': '%d.%d.%d' % ((uv.UV_VERSION_HEX >> 16) & 0xff,
                                        (uv.UV_VERSION_HEX >> 8) & 0xff,
                                        uv.UV_VERSION_HEX & 0xff),
        'platform_fallbacks': OURLOOP_PLATFORM_FALLBACKS.decode(),
    }
