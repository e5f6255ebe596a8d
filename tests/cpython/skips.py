"""Skip list for tools/cpython_conformance.py (CPython's own test.test_asyncio).

Only tests that depend on the *stdlib* event loop implementation's internals
belong here (they poke at ``loop._ready``, ``loop._selector``,
``loop._write_to_self``, mock private methods of ``asyncio.BaseEventLoop`` and
so on).  A test that fails because ourloop behaves differently from the stdlib
loop through the public API is an ourloop bug: it must NOT be listed here; it
stays a failure and is recorded in docs/conformance.md.

Every entry is ``(pattern, reason)`` or ``(pattern, reason, pythons)``:

* ``pattern``: a test id relative to ``test.test_asyncio``, i.e.
  ``module.Class.test_method``; ``fnmatch`` wildcards are allowed
  (``test_tasks.*Task*Tests.test_foo``).  A pattern that matches a whole
  module-level class (``test_x.SomeTests.*``) skips every test of the class.
* ``reason``: one line, shown as the unittest skip reason (prefixed with
  ``ourloop-skip:``) and in docs/conformance.md.
* ``pythons``: optional; a tuple of ``"3.X"`` strings the entry applies to
  (default: every version).

Skip-list entries are applied only when the tests run against ourloop, never
with ``--baseline``.
"""

SKIPS = [
    ('test_events.*.test_timeout_rounding',
     "counts calls of the stdlib loop's private _run_once() (ourloop's is native)"),
    ('test_events.*.test_create_server_multiple_hosts_ipv4',
     "mocks asyncio.base_events.socket, the stdlib implementation's own module"),
    ('test_events.*.test_create_server_multiple_hosts_ipv6',
     "mocks asyncio.base_events.socket, the stdlib implementation's own module"),
    ('test_events.*.test_prompt_cancellation',
     "its clean-up calls the stdlib loop's private _stop_serving()"),
    ('test_subprocess.*.test_popen_error',
     "makes the spawn fail by mocking subprocess.Popen, which the stdlib loop's "
     "transport calls; ourloop spawns with its own Popen subclass (tests/"
     "test_subprocess.py::test_spawn_failure_is_popens_and_leaves_nothing checks "
     "the same on both loops)"),
    ('test_subprocess.*.test_popen_error_with_stdin_pipe',
     "makes the spawn fail by mocking subprocess.Popen, which the stdlib loop's "
     "transport calls; ourloop spawns with its own Popen subclass (tests/"
     "test_subprocess.py::test_spawn_failure_is_popens_and_leaves_nothing checks "
     "the same on both loops)"),
    ('test_subprocess.GenericWatcherTests.test_create_subprocess_fails_with_inactive_watcher',
     "checks the calls the stdlib loop makes to an asyncio child watcher; ourloop "
     "reaps its children itself and never uses child watchers (docs/conformance.md)",
     ('3.11', '3.12', '3.13')),   # (not a TestCase before 3.11: never run)
    # (test_sock_sendfile_not_a_file, _iobuffer and _not_regular_file call
    # loop._sock_sendfile_native(), which ourloop has with the stdlib's
    # signature and errors: they run.)
    ('test_unix_events.SelectorEventLoopUnixSockSendfileTests.test_sock_sendfile_not_available',
     "mocks asyncio.unix_events.os, the stdlib loop's own module (ourloop's "
     "check of os.sendfile is in ourloop/_sendfile.py)"),
    ('test_unix_events.SelectorEventLoopUnixSockSendfileTests.test_sock_sendfile_cancel[12]',
     "calls the stdlib selector loop's private _sock_sendfile_native_impl() "
     "and inspects loop._selector (ourloop's sock_sendfile waits in a coroutine)"),
    ('test_unix_events.SelectorEventLoopUnixSockSendfileTests.test_sock_sendfile_blocking_error',
     "calls the stdlib selector loop's private _sock_sendfile_native_impl() "
     "and inspects loop._selector (ourloop's sock_sendfile waits in a coroutine)"),
    ('test_unix_events.SelectorEventLoopUnixSockSendfileTests.test_sock_sendfile_os_error_*',
     "calls the stdlib selector loop's private _sock_sendfile_native_impl() "
     "and inspects loop._selector (ourloop's sock_sendfile waits in a coroutine)"),
    ('test_unix_events.SelectorEventLoopUnixSockSendfileTests.test_sock_sendfile_exception',
     "calls the stdlib selector loop's private _sock_sendfile_native_impl() "
     "and inspects loop._selector (ourloop's sock_sendfile waits in a coroutine)"),
]
